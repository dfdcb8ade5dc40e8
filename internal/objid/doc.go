// Package objid mints, prints and parses durable-object IDs. It is the one implementation
// shared by the node and the Go SDK, so both agree bit for bit.
//
// An ID is 32 bytes, printed as 64 lowercase hex digits:
//
//	byte  0      kind: KindName (derived from a name) or KindUnique (random)
//	bytes 1..27  KindName: the first 27 bytes of sha256("duro-name" ‖ C ‖ name)
//	             KindUnique: crypto/rand
//	bytes 28..31 class checksum: the first 4 bytes of sha256("duro-id" ‖ C ‖ id[0:28])
//
// where C is uvarint(len(class)) ‖ class, so no class/name split is ambiguous.
//
// Invariants:
//   - FromName is a pure function of (class, name): every node and SDK computes the same ID.
//   - Every ID this package mints carries the checksum of its class, so Parse and Check reject
//     an ID minted for another class (ErrWrongClass) with probability 1 − 2⁻³². The checksum
//     is an integrity check against mix-ups, not an authenticator: anyone may compute it.
//   - Slot depends only on bytes 1..8, which are uniformly distributed for both kinds, and its
//     definition never changes: slot placement is persisted in every cluster.
package objid
