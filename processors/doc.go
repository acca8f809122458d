// Package processors holds skuflow's goka processor groups, one package
// each (stock, policies, orders), and the libraries they share: this
// package (Store, NewProcessor), deadletter (bad input with its reason) and
// backlog (the stock group's flood coalescing).
//
// Every group package exports a Define function returning its goka group
// graph, built from the names, keys and codecs of package schema, and a New
// constructor that tests can hand goka.WithTester. Callbacks are thin:
// decode, call a pure function from inventory/, then SetValue/Emit what it
// returned. Bad input goes to the dead-letter topic with the reason;
// nothing is dropped.
//
// A group never imports another group, and nothing here imports views/,
// gateway/ or the composition root (internal/app), which alone wires the
// groups into a process; internal/archtest enforces both.
package processors
