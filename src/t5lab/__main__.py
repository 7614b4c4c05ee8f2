from t5lab.cli import run

run()
