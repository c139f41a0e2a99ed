"""empirical: the paper's deep-network experiments on CIFAR-10 and friends (torch).

Planned in the project's issues (data, models, attacks, training, the robust/non-robust
datasets, transfer, and the bridge to gaussfeat's metrics); nothing is exported yet.
"""
