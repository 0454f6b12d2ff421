"""The `paycycle` command line: the roof. It imports every layer below it; nothing imports it."""
