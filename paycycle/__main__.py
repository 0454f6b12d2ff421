from paycycle.cli import run

run()
