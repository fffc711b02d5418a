"""Research, run on request (`train.py ablation`, `train.py train --challenger`): the ranking
challenger with Plackett-Luce probabilities and the ablation harness. The default path never
imports this package."""
