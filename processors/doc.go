// Package processors holds skuflow's goka processor groups, one package each.
// Every group package exports its group, table and topic names, a Define
// function returning its goka group graph, and a New constructor that tests
// can hand goka.WithTester. Callbacks are thin: decode, call a pure function
// from inventory/, then SetValue/Emit what it returned. Bad input goes to the
// dead-letter topic (package deadletter) with the reason; nothing is dropped.
package processors
