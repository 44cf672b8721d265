"""`igw up --stack local`: run a rendered stack's data plane on one machine.

plan.py (rendered objects → LocalPlan, pure) → envoy.py (bootstrap + file-based xDS) →
runner.py (the supervisor: simulators, pickers, Envoy; readiness, restarts, reload) →
state.py (.igw/local/<stack>/state.json) and report.py (the summary table).
"""
