// Package layering holds the test that keeps flowbox's package layering
// (STYLE.md §2): store is the leaf that owns the shared nouns; the decoder
// imports only store; collector and provision never import each other;
// nothing imports cmd, and only cmd/flowbox imports web; the test-support
// and fake packages reach production code only through the simulator and
// cmd/flowbox. It has no code of its own.
package layering
