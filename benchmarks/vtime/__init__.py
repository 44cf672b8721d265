"""Virtual-time evaluation: the picker's real decision path against the simulator's engine model.

No sockets and no sleeping: simulated replicas (`vllm_simulator.engine.Engine`, the same engine
the simulator's HTTP server runs) step in simulated time on one event queue, and every routing
decision goes through the picker's real `Director` (config validation, datastore, scheduler and
plugins, in-flight accounting) with metrics parsed by the picker's real `parse_metrics` from the
simulator's real `/metrics` text, as of the last scrape tick (interval, latency, staleness).

    events.py    simulated clock + event heap
    scrape.py    what a scraper would have read at its last tick (lazy, exact)
    replica.py   one engine driven step by step in simulated time
    requests.py  an OpenAI request body -> the simulator engine's Request (the server's rules)
    routers.py   strategies: round robin, least request (P2C), the picker, the oracle
    run.py       one run: workload x cluster x strategy x seed -> per-request samples
    summary.py   samples -> the reported metrics
"""
