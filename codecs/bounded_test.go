package codecs_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// maxScenarioBytes is topology.md's bound ("Bounded state per SKU") on a
// SKU with one location flooded by adjustments, or by rejected orders,
// with every id as long as the rules allow.
const maxScenarioBytes = 16 << 10

func encodedSize(t *testing.T, s inventory.State) int {
	t.Helper()
	b, err := codecs.State{}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// longID is an id of n bytes ending in i.
func longID(n, i int) string {
	tail := fmt.Sprintf("-%d", i)
	return strings.Repeat("x", n-len(tail)) + tail
}

// The probe's first finding: rejected orders grew a SKU's state (299 KB
// after 5,000) because each was remembered for 7 days.
func TestStateBoundedAfterRejectedOrders(t *testing.T) {
	s := applyAll(t, lvl("WH-1", 0, at(0), 1))
	p := inventory.Policies{Channels: []string{"web"}, DefaultStaleAfter: inventory.DefaultStaleAfter}
	var last inventory.ReservationRequested
	var lastOut inventory.Outcome
	for i := range 10_000 {
		order := longID(inventory.MaxRefLength-2, i)
		last = inventory.ReservationRequested{ReservationID: inventory.ReservationIDFor(order, 0), OrderID: order,
			SKU: sku, Channel: "web", Quantity: 1, TTL: time.Minute}
		next, out, _, err := inventory.Demand(s, last, p, at(1).Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if out == nil || out.Accepted {
			t.Fatalf("request %d: outcome %+v, want a rejection", i, out)
		}
		s, lastOut = next, *out
	}
	n := encodedSize(t, s)
	if n > maxScenarioBytes {
		t.Fatalf("state after 10,000 rejected orders is %d bytes, more than %d (%d reservations listed)", n, maxScenarioBytes, len(s.Reservations))
	}
	t.Logf("state after 10,000 rejected orders with the longest ids: %d bytes", n)
	// Within the bound, a duplicate still gets its recorded outcome.
	_, again, res, err := inventory.Demand(s, last, p, at(100))
	if err != nil || res.Changed || again == nil || *again != lastOut {
		t.Fatalf("duplicate of the last request: %+v %+v %v, want %+v unchanged", again, res, err, lastOut)
	}
}

// The probe's second finding: adjustments with no newer level were all
// listed by id (20,000 of them, rewritten on every event).
func TestStateBoundedAfterAdjustments(t *testing.T) {
	s := inventory.State{SKU: sku}
	var sum int64
	adjAt := func(i int) inventory.StockAdjustment {
		return adj(longID(inventory.MaxEventIDLen, i), "WH-1", int64(i%7)-2, at(1).Add(time.Duration(i)*time.Millisecond))
	}
	for i := range 20_000 {
		a := adjAt(i)
		if a.Delta == 0 {
			continue
		}
		next, res, err := inventory.Apply(s, a, a.OccurredAt)
		if err != nil || !res.Changed {
			t.Fatalf("adjustment %d: %+v %v", i, res, err)
		}
		s, sum = next, sum+a.Delta
	}
	n := encodedSize(t, s)
	if n > maxScenarioBytes {
		t.Fatalf("state after 20,000 adjustments is %d bytes, more than %d (%d adjustments listed)", n, maxScenarioBytes, len(s.Locations[0].Adjustment))
	}
	t.Logf("state after 20,000 adjustments with the longest ids: %d bytes", n)
	if got := s.Locations[0].Level + s.Locations[0].Folded + sumDeltas(s.Locations[0]); got != sum {
		t.Fatalf("units %d, want the sum of every adjustment, %d", got, sum)
	}
	// A duplicate of a folded adjustment is refused, never counted twice;
	// one of a listed adjustment changes nothing.
	_, res, err := inventory.Apply(s, adjAt(1), at(100))
	if !errors.Is(err, inventory.ErrFolded) || !inventory.IsInvalid(err) || res.Changed {
		t.Fatalf("duplicate of a folded adjustment: %+v %v, want ErrFolded", res, err)
	}
	_, res, err = inventory.Apply(s, adjAt(19_999), at(100))
	if err != nil || res.Changed {
		t.Fatalf("duplicate of a listed adjustment: %+v %v, want no change", res, err)
	}
}

func sumDeltas(l inventory.Location) int64 {
	var n int64
	for _, a := range l.Adjustment {
		n += a.Delta
	}
	return n
}

// A state stored before the bound (format 1), with every adjustment and
// every closed reservation listed, decodes to what a replay under the
// bound gives, and encodes to the same bytes.
func TestDecodeUpgradesFormat1(t *testing.T) {
	var evs []inventory.Event
	old := &pb.SkuState{Sku: sku, Format: 1, Locations: []*pb.LocationState{{Location: "WH-1"}}}
	for i := range 3 * inventory.MaxAdjustments {
		a := adj(fmt.Sprintf("a-%03d", i), "WH-1", 1, at(i+1))
		evs = append(evs, a)
		old.Locations[0].Adjustments = append(old.Locations[0].Adjustments,
			&pb.AppliedAdjustment{EventId: a.EventID, Delta: 1, OccurredAtUnixNano: a.OccurredAt.UnixNano()})
	}
	replay := applyAll(t, evs...)
	p := inventory.Policies{Channels: []string{"web"}, DefaultStaleAfter: inventory.DefaultStaleAfter}
	for i := range 2 * inventory.MaxClosedReservations {
		req := inventory.ReservationRequested{ReservationID: fmt.Sprintf("r-%03d", i), OrderID: "o", SKU: sku, Channel: "web", Quantity: 1_000_000, TTL: time.Minute}
		next, _, _, err := inventory.Demand(replay, req, p, at(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		replay = next
		old.Reservations = append(old.Reservations, &pb.ReservationState{ReservationId: req.ReservationID, OrderId: "o", Channel: "web",
			Quantity: req.Quantity, Status: int32(inventory.StatusRejected), RejectReason: int32(inventory.RejectInsufficient),
			DecidedAtUnixNano: at(1000 + i).UnixNano(), ClosedAtUnixNano: at(1000 + i).UnixNano()})
	}
	data, err := proto.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codecs.State{}.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codecs.State{}.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	want, err := codecs.State{}.Encode(replay)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("format-1 state upgraded to\n%+v\nreplay under the bound\n%+v", v, replay)
	}
}
