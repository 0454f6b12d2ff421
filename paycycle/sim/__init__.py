"""The subscription-business simulator and its ground truth (`simulator`, `retention`).

Only benchmarks, tests, the data flow (`flows.pipeline`, `paycycle simulate`) and scenario
monitoring (`monitoring.windows`) import it; production code (notices, features, serving) reads
the raw tables through the core (`paycycle.tables`, `paycycle.calendar`, `paycycle.catalog`).
"""
