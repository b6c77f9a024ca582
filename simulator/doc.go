// Package simulator plays Zautic's part: it builds realistic events of every
// documented type, signs them with the verifier's own code (zautic.Sign)
// and posts them with Zautic's headers, one at a time or as a load run.
//
// Payload and Generator build bodies; Runner sends them with bounded
// concurrency, an optional rate, duplicates and Zautic-like retries, and
// reports a Summary with latency percentiles. Bodies are built and signed
// before the timed loop, so that the generator is not what a benchmark
// measures.
package simulator
