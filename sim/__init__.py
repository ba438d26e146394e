"""A seeded ad-market simulator that emits the event contract in accelerated event time.

Typical use (see ``python -m sim --help`` for the command line)::

    sim = Simulator(SimConfig(days=30), UniformRandomPolicy(seed=1))
    with FileWriter("out") as writer:          # or KafkaWriter("127.0.0.1:9092")
        for chunk in sim.run():                # one simulated hour per chunk
            writer.write(chunk.records)        # arrival order, noise included
    sim.truth.write_json("out/truth.json")     # true CTRs, injected noise, attribution inputs

``sim.market`` exposes the hidden market (true CTRs, price distribution, conversion model) for
environments that learners are trained and evaluated in.
"""

from __future__ import annotations

from sim.config import SimConfig
from sim.market import Campaign, Market
from sim.noise import MALFORMED_KINDS, SimRecord
from sim.policies import Decision, FixedPolicy, Request, ServingPolicy, UniformRandomPolicy
from sim.simulator import Chunk, Simulator
from sim.truth import GroundTruth
from sim.validate import check_record, check_value, clean_violations
from sim.writers import FileWriter, KafkaWriter

__all__ = [
    "MALFORMED_KINDS",
    "Campaign",
    "Chunk",
    "Decision",
    "FileWriter",
    "FixedPolicy",
    "GroundTruth",
    "KafkaWriter",
    "Market",
    "Request",
    "ServingPolicy",
    "SimConfig",
    "SimRecord",
    "Simulator",
    "UniformRandomPolicy",
    "check_record",
    "check_value",
    "clean_violations",
]
