"""`igw up --stack local`: run a rendered stack's data plane on one machine.

plan.py (rendered objects → LocalPlan, pure; rendered_objects.py and plan_*.py its parts) →
envoy.py (bootstrap + file-based xDS) → supervisor.py (owns every process: replicas.py launches
model-server pods, pickers.py the endpoint pickers, then Envoy; readiness, restarts) → rollout.py
(apply a new render with no request dropped) → state.py (.igw/local/<stack>/state.json) and
report.py (the summary table). process.py is one child process; detached.py runs the supervisor
in the background.
"""
