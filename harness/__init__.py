"""Shared by the tests and the benchmarks: `server` runs one `provenance serve` on a free loopback
port; `topology` runs the docker-compose topology (anvil, a fresh PostgreSQL database, API and
worker processes) as local processes; `synthetic` builds fingerprints from raw PDQ codes;
`accounts` makes API keys and enrols devices; `manifests` signs capture manifests and registration
forms. Imported from the repository's root, like tests/ and bench/; not part of the installed
distribution."""
