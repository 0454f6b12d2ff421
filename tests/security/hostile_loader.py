"""Stands for attacker-chosen code named by a registry tag; importing it is the failure."""

raise AssertionError("a registry tag made PayCycle import code")
