"""Test and benchmark support: real processes (sshd) started for the suite.

Nothing here imports pytest, so ``bench/`` can use it too.
"""
