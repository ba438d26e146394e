"""Print or apply the Kafka ACLs and Redis ACL rules of a role (connect/acls.py).

    python -m scripts.acls kafka --role job --principal User:adloop-job [--config adloop.yaml]
    python -m scripts.acls kafka --role job --principal User:adloop-job --apply
    python -m scripts.acls redis --role serving --user adloop-serving

``kafka`` prints one ``kafka-acls.sh`` command per binding, or with ``--apply`` creates them through
the Admin API, connecting with the config's Kafka settings (a principal allowed to alter ACLs).
``redis`` prints the ``redis-cli ACL SETUSER`` command; the password is not printed: the command
reads it from the environment variable named by ``--password-env`` when a shell runs it.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from config import app as app_config
from connect.acls import KAFKA_ROLES, REDIS_ROLES, apply_kafka_acls, kafka_acls, redis_rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.acls", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("kafka", "redis"))
    parser.add_argument(
        "--role", required=True, help=f"kafka: {'|'.join(KAFKA_ROLES)}; redis: {'|'.join(REDIS_ROLES)}"
    )
    parser.add_argument("--config", default=None, help="YAML app config (default flink-conf/adloop.yaml)")
    parser.add_argument("--principal", default=None, help="Kafka principal, e.g. User:adloop-job")
    parser.add_argument("--apply", action="store_true", help="create the Kafka ACLs through the Admin API")
    parser.add_argument("--user", default=None, help="Redis ACL user name")
    parser.add_argument("--password-env", default="ADLOOP_REDIS_PASSWORD", help="its password's variable")
    args = parser.parse_args(argv)
    try:
        cfg = app_config.load(args.config)
        if args.kind == "kafka":
            if not args.principal:
                raise ValueError("--principal: expected e.g. User:adloop-job, found nothing")
            acls = kafka_acls(cfg, args.role)
            if args.apply:
                apply_kafka_acls(cfg.kafka.librdkafka(), args.principal, acls)
                print(f"created {len(acls)} ACLs for {args.principal}")
            else:
                print("\n".join(a.command(args.principal, cfg.kafka.bootstrap_servers) for a in acls))
        else:
            if not args.user:
                raise ValueError("--user: expected a Redis ACL user name, found nothing")
            rules = " ".join(shlex.quote(r) for r in redis_rules(cfg.redis.key_prefix, args.role))
            print(f'redis-cli ACL SETUSER {shlex.quote(args.user)} reset on ">${args.password_env}" {rules}')
    except (ValueError, RuntimeError) as exc:
        print(f"acls: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
