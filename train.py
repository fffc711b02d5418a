"""Train, evaluate and track the podium model: see `python train.py --help`."""

from models_py.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
