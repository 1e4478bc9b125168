"""Side-by-side benchmark of runbook against ansible-playbook, pyinfra and the floors.

Run it with ``python bench/run.py`` (see ``bench/README.md``). Nothing here is part of
the ``runbook_engine`` package; the harness only drives real processes.
"""
