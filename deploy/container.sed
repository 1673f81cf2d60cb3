# config.toml for the container (deploy/compose.yaml): run once, after publisher init,
#     docker compose -f deploy/compose.yaml run --rm -T daemon sed -i -f - config.toml < deploy/container.sed
# The store becomes the compose file's PostgreSQL (its password comes from PGPASSWORD in
# deploy/.env); the daemon listens on the container's network and believes the proxy that
# reaches it from Docker's networks.
s|^url = "sqlite:///publisher.db"$|url = "postgresql+psycopg://publisher@db:5432/publisher"|
s|^host = "127.0.0.1"$|host = "0.0.0.0"|
/^port = 8000$/a trusted_proxies = ["172.16.0.0/12"]
