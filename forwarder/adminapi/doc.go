// Package adminapi holds what a forwarder's admin listener answers, as Go
// types, and a small Client for it. The forwarder encodes these types, the
// quarantine and deliveries commands decode them, and so may any operator's
// script. It imports the standard library only.
package adminapi
