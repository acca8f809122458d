package gateway

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// DefaultAnswerCacheSize is how many answers the gateway keeps when
// Options.AnswerCacheSize is 0. A kept answer of a SKU at five locations
// takes about 6 KB (its snapshot, protobuf and JSON encodings), so the
// default stays near 120 MB at most.
const DefaultAnswerCacheSize = 20_000

// answerShards spreads the kept answers over locks.
const answerShards = 64

// answers keeps each SKU's evaluated answer, and its encodings, for as long
// as it provably is what inventory.Evaluate gives:
//
//   - the SKU's state has not changed: the stock lookup's change counter
//     for the SKU (views.StockChanges), noted before the state was read, is
//     unchanged;
//   - no policy has changed: the policy lookup's total counter
//     (views.PolicyChanges) is unchanged (policies change rarely, so any
//     change drops every kept answer rather than tracking which SKUs read
//     which policies);
//   - the query time t is within [the time it was evaluated at,
//     NextChangeAt): Evaluate's NextChangeAt is the first instant after the
//     evaluation at which any rule that reads the clock (staleness, a cap
//     window, a hold expiring) turns, so the answer for every t in that
//     range is the same but for EvaluatedAt, which is set to t at serve
//     time. A clock that moved back re-evaluates.
//
// Only then is an answer served from here; otherwise it is evaluated again
// (and kept). A view notes an update right after storing it, so for the
// instant between the two a kept answer is the one from before the update,
// as if the update had arrived that much later. Lookups that track no changes keep nothing: every answer is
// evaluated. At most a bounded number of answers are kept; past it an
// arbitrary one makes room. SKUs that are not known are never kept.
type answers struct {
	stock    views.StockLookup
	policies views.PolicyLookup
	base     inventory.Base
	// stockCh and policyCh are nil when nothing is kept.
	stockCh, policyCh *views.Changes
	perShard          int
	seed              maphash.Seed
	shards            [answerShards]answerShard
}

type answerShard struct {
	mu sync.RWMutex
	m  map[answerKey]*answer
}

type answerKey struct{ sku, shipTo string }

// newAnswers keeps up to size answers (0: DefaultAnswerCacheSize; negative:
// none).
func newAnswers(stock views.StockLookup, policies views.PolicyLookup, base inventory.Base, size int) *answers {
	a := &answers{stock: stock, policies: policies, base: base, seed: maphash.MakeSeed()}
	if size == 0 {
		size = DefaultAnswerCacheSize
	}
	sc, ok1 := stock.(views.StockChanges)
	pc, ok2 := policies.(views.PolicyChanges)
	if size > 0 && ok1 && ok2 {
		a.stockCh, a.policyCh = sc.StockChanges(), pc.PolicyChanges()
		a.perShard = max(1, size/answerShards)
		for i := range a.shards {
			a.shards[i].m = make(map[answerKey]*answer)
		}
	}
	return a
}

// keeping reports whether answers are kept at all.
func (a *answers) keeping() bool { return a.stockCh != nil }

// ready reports whether both lookups can answer. A kept answer is served
// only when they can, so a lookup that stops (or recovers again) answers
// Unavailable exactly as without the cache.
func (a *answers) ready() bool { return a.stock.Ready() && a.policies.Ready() }

func (a *answers) shard(sku string) *answerShard {
	return &a.shards[maphash.String(a.seed, sku)%answerShards]
}

// kept returns the kept answer for sku and shipTo if it is valid at now,
// else nil. The caller has checked ready.
func (a *answers) kept(sku, shipTo string, now time.Time) *answer {
	if !a.keeping() {
		return nil
	}
	sg, pg := a.stockCh.Of(sku), a.policyCh.Total()
	sh := a.shard(sku)
	sh.mu.RLock()
	e := sh.m[answerKey{sku, shipTo}]
	sh.mu.RUnlock()
	if e != nil && e.validAt(sg, pg, now) {
		return e
	}
	return nil
}

// get returns the answer for sku (nil if the SKU is not known) evaluated
// for shipTo at now: a kept one if it is valid at now, else a new one,
// which it keeps. ready is a.ready(), checked once per request.
func (a *answers) get(sku, shipTo string, now time.Time, ready bool) (*answer, error) {
	var sg, pg uint64
	if a.keeping() {
		// Noted before the reads below: a change after them advances the
		// counters, so the answer is not kept past it.
		sg, pg = a.stockCh.Of(sku), a.policyCh.Total()
		if ready {
			sh := a.shard(sku)
			sh.mu.RLock()
			e := sh.m[answerKey{sku, shipTo}]
			sh.mu.RUnlock()
			if e != nil && e.validAt(sg, pg, now) {
				return e, nil
			}
		}
	}
	state, found, err := a.stock.Get(sku)
	if err != nil {
		return nil, &apierr.LookupError{Views: "availability", Lookup: "stock", Err: fmt.Errorf("sku %q: %w", sku, err)}
	}
	// A state without stock or policy (one an order invented before orders
	// stopped inventing SKUs) is not a SKU skuflow knows.
	if !found || !state.Known() {
		return nil, nil
	}
	pol, err := schema.Gather(state, a.policies.GetPolicy, a.base)
	if err != nil {
		return nil, &apierr.LookupError{Views: "availability", Lookup: "policy", Err: fmt.Errorf("sku %q: %w", sku, err)}
	}
	pol.ShipTo = shipTo // empty: the region-less answer, as published
	e := newAnswer(inventory.Evaluate(state, pol, now))
	if a.keeping() {
		e.stockGen, e.policyGen = sg, pg
		a.keep(answerKey{sku, shipTo}, e)
	}
	return e, nil
}

func (a *answers) keep(k answerKey, e *answer) {
	sh := a.shard(k.sku)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= a.perShard {
		for old := range sh.m { // an arbitrary one makes room
			delete(sh.m, old)
			break
		}
	}
	sh.m[k] = e
}

// answer is one evaluated answer with what serving it needs. Everything in
// it is read-only once built; the encodings are built on first use.
type answer struct {
	snap inventory.Snapshot // EvaluatedAt is from
	// etag is the version as an HTTP entity tag; etagMD the same as gRPC
	// header metadata.
	etag   string
	etagMD metadata.MD
	// The answer holds while the counters are these and the query time is
	// in [from, until) (until zero: no end).
	stockGen, policyGen uint64
	from, until         time.Time

	wire atomic.Pointer[[]byte]    // the message without evaluated_at, in the protobuf wire format
	json atomic.Pointer[jsonSplit] // the message in JSON, split around evaluated_at
}

func newAnswer(snap inventory.Snapshot) *answer {
	etag := `"` + snap.Version + `"`
	return &answer{snap: snap, etag: etag, etagMD: metadata.MD{"etag": {etag}}, from: snap.EvaluatedAt, until: snap.NextChangeAt}
}

// message is the answer as the API message without evaluated_at. It is
// built anew on every call (kept answers keep the snapshot and the
// encodings, not the message, which is larger).
func (e *answer) message() *pb.Availability {
	m := codecs.SnapshotToProto(e.snap)
	m.EvaluatedAt = nil
	return m
}

func (e *answer) validAt(stockGen, policyGen uint64, now time.Time) bool {
	return e.stockGen == stockGen && e.policyGen == policyGen && !now.Before(e.from) && (e.until.IsZero() || now.Before(e.until))
}

// snapshotAt is the answer evaluated at now (valid for now).
func (e *answer) snapshotAt(now time.Time) inventory.Snapshot {
	s := e.snap
	s.EvaluatedAt = now.UTC()
	return s
}

// messageAt is the API message of the answer at now.
func (e *answer) messageAt(now time.Time) *pb.Availability {
	return codecs.SnapshotToProto(e.snapshotAt(now))
}

// wireBytes is the message without evaluated_at in the protobuf wire
// format (nil if it cannot be encoded).
func (e *answer) wireBytes() []byte {
	if p := e.wire.Load(); p != nil {
		return *p
	}
	b, err := proto.Marshal(e.message())
	if err != nil {
		b = nil
	}
	e.wire.Store(&b)
	return b
}

// preEncodedAt is the answer at now as a message whose whole content is
// its encoding, held as unknown fields: marshalling it (as grpc-go does)
// copies the bytes, and a client decodes it as the full answer. The
// encoding is the kept one with evaluated_at (field 8) appended: a field
// may come in any order on the wire. It returns nil when it cannot build
// one (the caller then sends messageAt). Only for gRPC, whose codec
// marshals what a handler returns; grpc-gateway's JSON marshaller ignores
// unknown fields.
func (e *answer) preEncodedAt(now time.Time) *pb.Availability {
	w := e.wireBytes()
	if w == nil {
		return nil
	}
	buf := make([]byte, 0, len(w)+maxTimestampFieldLen)
	buf = append(buf, w...)
	if !now.IsZero() { // as codecs.SnapshotToProto leaves a zero time unset
		buf = appendTimestampField(buf, availabilityEvaluatedAt, now)
	}
	m := new(pb.Availability)
	m.ProtoReflect().SetUnknown(buf)
	return m
}

// Field numbers the hand-built encodings write.
const (
	availabilityEvaluatedAt protowire.Number = 8 // Availability.evaluated_at
	batchResults            protowire.Number = 1 // BatchGetAvailabilityResponse.results
	batchEvaluatedAt        protowire.Number = 2 // BatchGetAvailabilityResponse.evaluated_at
	resultSKU               protowire.Number = 1 // AvailabilityResult.sku
	resultFound             protowire.Number = 2 // AvailabilityResult.found
	resultAvailability      protowire.Number = 3 // AvailabilityResult.availability
	timestampSeconds        protowire.Number = 1
	timestampNanos          protowire.Number = 2
	maxTimestampFieldLen                     = 1 + 1 + 1 + 10 + 1 + 5 // tag, length, seconds and nanos fields
)

// appendTimestamp appends t as a google.protobuf.Timestamp message body.
func appendTimestamp(b []byte, t time.Time) []byte {
	secs, nanos := t.Unix(), int32(t.Nanosecond())
	if secs != 0 {
		b = protowire.AppendTag(b, timestampSeconds, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(secs))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, timestampNanos, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(nanos))
	}
	return b
}

// appendTimestampField appends field num holding t.
func appendTimestampField(b []byte, num protowire.Number, t time.Time) []byte {
	var tmp [24]byte
	ts := appendTimestamp(tmp[:0], t)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	return b
}

// preEncodedBatch encodes a BatchGetAvailabilityResponse the way
// preEncodedAt encodes an answer: results in order, each found one with
// its kept encoding and evaluated_at appended. It returns nil when an
// answer cannot be encoded.
func preEncodedBatch(skus []string, found []*answer, now time.Time) *pb.BatchGetAvailabilityResponse {
	var tmp [24]byte
	ts := appendTimestamp(tmp[:0], now)
	evalField := protowire.SizeTag(availabilityEvaluatedAt) + protowire.SizeBytes(len(ts))
	if now.IsZero() { // as codecs.SnapshotToProto leaves a zero time unset
		evalField = 0
	}
	size := protowire.SizeTag(batchEvaluatedAt) + protowire.SizeBytes(len(ts))
	sizes := make([]int, len(skus))
	for i, sku := range skus {
		n := protowire.SizeTag(resultSKU) + protowire.SizeBytes(len(sku))
		if e := found[i]; e != nil {
			w := e.wireBytes()
			if w == nil {
				return nil
			}
			n += protowire.SizeTag(resultFound) + 1
			n += protowire.SizeTag(resultAvailability) + protowire.SizeBytes(len(w)+evalField)
		}
		sizes[i] = n
		size += protowire.SizeTag(batchResults) + protowire.SizeBytes(n)
	}
	b := make([]byte, 0, size)
	for i, sku := range skus {
		b = protowire.AppendTag(b, batchResults, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizes[i]))
		b = protowire.AppendTag(b, resultSKU, protowire.BytesType)
		b = protowire.AppendString(b, sku)
		if e := found[i]; e != nil {
			w := e.wireBytes()
			b = protowire.AppendTag(b, resultFound, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
			b = protowire.AppendTag(b, resultAvailability, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(len(w)+evalField))
			b = append(b, w...)
			if evalField > 0 {
				b = protowire.AppendTag(b, availabilityEvaluatedAt, protowire.BytesType)
				b = protowire.AppendBytes(b, ts)
			}
		}
	}
	b = protowire.AppendTag(b, batchEvaluatedAt, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	m := new(pb.BatchGetAvailabilityResponse)
	m.ProtoReflect().SetUnknown(b)
	return m
}

// jsonSplit is an answer as a marshaller writes it, cut around the value of
// evaluated_at: head + the JSON string of the query time + tail is, byte
// for byte, what the marshaller writes for the answer at that time. ok is
// false when the marshaller's output could not be cut so (the caller then
// marshals the message).
type jsonSplit struct {
	m          runtime.Marshaler
	head, tail []byte
	ok         bool
}

// The two evaluation times jsonFor marshals the answer at: different in
// their first and last digits, of the same length, and no time Evaluate
// gives.
var (
	splitTimeA = time.Date(1111, 11, 11, 11, 11, 11, 111111111, time.UTC)
	splitTimeB = time.Date(2222, 12, 22, 22, 22, 22, 222222222, time.UTC)
)

// jsonFor returns the answer in m's JSON, split around evaluated_at.
func (e *answer) jsonFor(m runtime.Marshaler) *jsonSplit {
	if s := e.json.Load(); s != nil && s.m == m {
		return s
	}
	s := splitJSON(m, e.message())
	e.json.Store(s)
	return s
}

// splitJSON marshals msg (which it modifies) at two evaluation times and
// finds where the value differs; it checks that the outputs are exactly
// head + value + tail with the values appendJSONTimestamp writes, so
// serving head + value + tail is what m would write.
func splitJSON(m runtime.Marshaler, msg *pb.Availability) *jsonSplit {
	s := &jsonSplit{m: m}
	msg.EvaluatedAt = timestamppb.New(splitTimeA)
	a, errA := m.Marshal(msg)
	msg.EvaluatedAt = timestamppb.New(splitTimeB)
	b, errB := m.Marshal(msg)
	if errA != nil || errB != nil || len(a) != len(b) {
		return s
	}
	va, okA := appendJSONTimestamp(nil, splitTimeA)
	vb, okB := appendJSONTimestamp(nil, splitTimeB)
	p := 0
	for p < len(a) && a[p] == b[p] {
		p++
	}
	// p is the first digit of the time: the value starts at its quote.
	start := p - 1
	if !okA || !okB || start < 0 || start+len(va) > len(a) {
		return s
	}
	head, tail := a[:start], a[start+len(va):]
	if !bytes.Equal(a[start:start+len(va)], va) || !bytes.Equal(b[:start], head) ||
		!bytes.Equal(b[start:start+len(vb)], vb) || !bytes.Equal(b[start+len(vb):], tail) {
		return s
	}
	s.head, s.tail, s.ok = head, tail, true
	return s
}

// appendBody appends the answer's JSON at now; false if now cannot be
// written as a JSON timestamp (then the caller marshals the message, which
// reports the error as the marshaller does).
func (s *jsonSplit) appendBody(b []byte, now time.Time) ([]byte, bool) {
	b = append(b, s.head...)
	b, ok := appendJSONTimestamp(b, now)
	if !ok {
		return b, false
	}
	return append(b, s.tail...), true
}

// The range of google.protobuf.Timestamp.
const (
	minTimestampSeconds = -62135596800 // 0001-01-01T00:00:00Z
	maxTimestampSeconds = 253402300799 // 9999-12-31T23:59:59Z
)

// appendJSONTimestamp appends t as protojson writes a
// google.protobuf.Timestamp: a quoted RFC 3339 time in UTC with 0, 3, 6 or
// 9 fractional digits. False if t is outside the Timestamp range.
func appendJSONTimestamp(b []byte, t time.Time) ([]byte, bool) {
	if secs := t.Unix(); secs < minTimestampSeconds || secs > maxTimestampSeconds {
		return b, false
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000")
	for range 2 {
		b = bytes.TrimSuffix(b, []byte("000"))
	}
	b = bytes.TrimSuffix(b, []byte(".000"))
	return append(b, 'Z', '"'), true
}
