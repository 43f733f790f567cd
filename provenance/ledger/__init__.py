"""The transparency log: RFC 6962 Merkle hashing and proofs (see `merkle`)."""
