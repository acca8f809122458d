package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// TestProcessorCrashMidStream kill -9s a real `skuflow process` while it is
// deciding a stream of multi-item orders, restarts it, and lets it finish.
// goka redelivers about a second of input; the outcome must still be what
// the pure rules give for the log that was processed: per SKU, folding the
// demand topic through inventory.Demand yields exactly the processor's
// reservations, every outcome message for a reservation is the same, and
// every order holds all its lines or none.
func TestProcessorCrashMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a processor process")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	cfg := inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour}
	data := t.TempDir()
	startProc := func() *exec.Cmd {
		cmd := exec.Command(binary, "process", "--brokers", b.Addrs()[0], "--partitions", fmt.Sprint(k.Partitions), "--metrics", "127.0.0.1:0",
			"--replication", "1", "--data", data, "--channels", "web", "--reconcile-interval", "1s", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	proc := startProc()
	t.Cleanup(func() { _ = proc.Process.Kill(); _, _ = proc.Process.Wait() })

	// Stock for five SKUs, then 400 orders of one to three lines.
	skus := []string{"SKU-C1", "SKU-C2", "SKU-C3", "SKU-C4", "SKU-C5"}
	asOf := time.Now().Add(-time.Hour)
	var supply []inventory.Event
	for i, sku := range skus {
		supply = append(supply, inventory.StockLevel{SKU: sku, Location: "WH-1", OnHand: int64(40 + 20*i), AsOf: asOf, Sequence: 1})
	}
	produce(t, k, string(schema.Supply), func(ev inventory.Event) (string, proto.Message) {
		m, err := codecs.SupplyEventToProto(ev)
		if err != nil {
			t.Fatal(err)
		}
		return ev.EventSKU(), m
	}, supply)
	sv := startView(t, k, func(o []goka.ViewOption) (interface{ Run(context.Context) error }, error) {
		return views.NewStock(k.Brokers, o...)
	})
	stockView := sv.(*views.Stock)
	testkit.Eventually(t, 60*time.Second, func() error {
		for _, sku := range skus {
			if _, found, err := stockView.Get(sku); err != nil || !found {
				return fmt.Errorf("%s not stocked yet: %v", sku, err)
			}
		}
		return nil
	})

	rng := rand.New(rand.NewPCG(3, 4))
	var cmds []inventory.PlaceOrder
	for i := range 400 {
		c := inventory.PlaceOrder{OrderID: fmt.Sprintf("crash-%03d", i), Channel: "web", ReservationTTL: time.Hour, DecisionTimeout: 5 * time.Minute}
		for _, j := range rng.Perm(len(skus))[:1+rng.IntN(3)] {
			c.Lines = append(c.Lines, inventory.OrderLine{SKU: skus[j], Quantity: int64(1 + rng.IntN(3))})
		}
		cmds = append(cmds, c)
	}
	ov := startView(t, k, func(o []goka.ViewOption) (interface{ Run(context.Context) error }, error) {
		return views.NewOrders(k.Brokers, o...)
	})
	orderView := ov.(*views.Orders)
	final := func() int {
		n := 0
		for _, c := range cmds {
			if o, found, err := orderView.Get(c.OrderID); err == nil && found && o.Final() {
				n++
			}
		}
		return n
	}
	go produce(t, k, string(schema.Orders), func(c inventory.PlaceOrder) (string, proto.Message) {
		return c.OrderID, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(c)}}
	}, cmds)

	// Kill -9 mid-stream: once some orders are decided, and while others
	// are not. Only the killed processor writes the orders table, so its
	// changelog read after the kill holds exactly the decisions made
	// before it; a kill after the last decision would test no recovery.
	testkit.Eventually(t, 60*time.Second, func() error {
		if n := final(); n < 20 {
			return fmt.Errorf("%d orders decided", n)
		}
		return nil
	})
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = proc.Process.Wait()
	killedAt := decidedInLog(t, k)
	t.Logf("killed the processor after %d of %d orders were decided", killedAt, len(cmds))
	if killedAt == 0 || killedAt >= len(cmds) {
		t.Fatalf("the kill did not happen mid-stream: %d of %d orders were decided before it", killedAt, len(cmds))
	}
	proc = startProc()
	testkit.Eventually(t, 120*time.Second, func() error {
		if n := final(); n < len(cmds) {
			return fmt.Errorf("%d of %d orders decided", n, len(cmds))
		}
		return nil
	})
	// Orders end before their compensating releases are processed: wait for
	// the processor to finish the demand log before replaying it.
	waitConsumed(t, k, string(schema.StockGroup), string(schema.Demand))
	waitConsumed(t, k, string(schema.OrdersGroup), string(schema.Outcomes))

	// Replay the logs through the pure rules.
	supplyByKey := map[string][]inventory.Event{}
	for _, e := range supply {
		supplyByKey[e.EventSKU()] = append(supplyByKey[e.EventSKU()], e)
	}
	demand := consumeAll(t, k, string(schema.Demand))
	outcomes := consumeAll(t, k, string(schema.Outcomes))
	model := map[string]inventory.State{}
	for _, sku := range skus {
		var s inventory.State
		for _, e := range supplyByKey[sku] {
			s, _, _ = inventory.Apply(s, e, asOf)
		}
		model[sku] = s
	}
	pol := cfg.Policies()
	// Every outcome the pure rules gave, per reservation, in log order. A
	// duplicate request gets the recorded outcome, except that a SKU lists
	// only its inventory.MaxRejected newest rejections: a request
	// redelivered after its rejection was forgotten is decided anew (and
	// the saga releases a late acceptance). A reservation that held units
	// is never forgotten, so once accepted its outcome never changes.
	modelOutcomes := map[string][]*pb.ReservationOutcome{}
	for _, m := range demand {
		ev, err := codecs.DecodeDemandEvent(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		s, out, _, err := inventory.Demand(model[string(m.Key)], ev, pol, m.Timestamp)
		if err != nil {
			t.Fatalf("demand %v: %v", ev, err)
		}
		model[string(m.Key)] = s
		if out != nil {
			modelOutcomes[out.ReservationID] = append(modelOutcomes[out.ReservationID], codecs.OutcomeToProto(*out))
		}
	}
	for _, sku := range skus {
		// The view may be recovering again for a moment (goka restarts a
		// partition whose offset compaction moved): wait on it.
		testkit.Eventually(t, 30*time.Second, func() error {
			got, _, err := stockView.Get(sku)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got.Reservations, model[sku].Reservations) {
				return fmt.Errorf("%s: processor's reservations differ from the pure fold of the demand log:\n%s", sku,
					diffReservations(got.Reservations, model[sku].Reservations))
			}
			return nil
		})
	}
	for id, want := range modelOutcomes {
		if i := slices.IndexFunc(want, (*pb.ReservationOutcome).GetAccepted); i >= 0 &&
			slices.ContainsFunc(want[i:], func(w *pb.ReservationOutcome) bool { return !proto.Equal(w, want[i]) }) {
			t.Errorf("the pure rules changed reservation %s's outcome after accepting it: %v", id, want)
		}
	}
	seen := map[string]*pb.ReservationOutcome{}
	accepted := map[string]*pb.ReservationOutcome{}
	for _, m := range outcomes {
		var o pb.ReservationOutcome
		if err := proto.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		id := o.GetReservationId()
		want := modelOutcomes[id]
		if !slices.ContainsFunc(want, func(w *pb.ReservationOutcome) bool { return proto.Equal(w, &o) }) {
			t.Errorf("outcome for %s is %v, the pure rules say %v", id, &o, want)
		}
		decidedAnew := slices.ContainsFunc(want, func(w *pb.ReservationOutcome) bool { return !proto.Equal(w, want[0]) })
		if prev, ok := seen[id]; ok && !proto.Equal(prev, &o) && !decidedAnew {
			t.Errorf("reservation %s has two different outcomes:\n%v\n%v", id, prev, &o)
		}
		seen[id] = &o
		if a, ok := accepted[id]; ok && o.GetAccepted() && !proto.Equal(a, &o) {
			t.Errorf("reservation %s accepted twice:\n%v\n%v", id, a, &o)
		}
		if o.GetAccepted() {
			accepted[id] = &o
		}
	}
	// Every order holds all its lines or none, and the held units add up.
	held := map[string]int64{}
	for _, c := range cmds {
		var o inventory.Order
		testkit.Eventually(t, 30*time.Second, func() error {
			var found bool
			var err error
			if o, found, err = orderView.Get(c.OrderID); err == nil && !found {
				err = fmt.Errorf("order %s not in the view", c.OrderID)
			}
			return err
		})
		for _, l := range o.Lines {
			s := model[l.SKU]
			i := slices.IndexFunc(s.Reservations, func(r inventory.Reservation) bool { return r.ID == l.ReservationID })
			isHeld := i >= 0 && s.Reservations[i].Status == inventory.StatusHeld
			if (o.Status == inventory.OrderReserved) != isHeld {
				t.Errorf("order %s is %v but its line %s held=%v", o.ID, o.Status, l.ReservationID, isHeld)
			}
			if isHeld {
				held[l.SKU] += l.Quantity
			}
		}
	}
	for _, sku := range skus {
		var inState int64
		for _, r := range model[sku].Reservations {
			if r.Status == inventory.StatusHeld {
				inState += r.Quantity
			}
		}
		if inState != held[sku] {
			t.Errorf("%s: %d units held at the SKU, %d by reserved orders", sku, inState, held[sku])
		}
	}
	t.Logf("%d demand messages and %d outcome messages replayed (duplicates from redelivery included)", len(demand), len(outcomes))
}

// decidedInLog counts the orders whose latest value in the orders table's
// changelog is final.
func decidedInLog(t *testing.T, k kafkacfg.Options) int {
	t.Helper()
	latest := map[string]inventory.Order{}
	for _, m := range consumeAll(t, k, string(schema.OrdersTable)) {
		if m.Value == nil {
			delete(latest, string(m.Key))
			continue
		}
		v, err := schema.OrderCodec.Decode(m.Value)
		if err != nil {
			t.Fatalf("orders changelog at %d/%d: %v", m.Partition, m.Offset, err)
		}
		latest[string(m.Key)] = v.(inventory.Order)
	}
	n := 0
	for _, o := range latest {
		if o.Final() {
			n++
		}
	}
	return n
}

func produce[T any](t *testing.T, k kafkacfg.Options, topic string, msg func(T) (string, proto.Message), items []T) {
	em, err := goka.NewEmitter(k.Brokers, goka.Stream(topic), new(codec.Bytes), k.EmitterOptions()...)
	if err != nil {
		t.Error(err)
		return
	}
	for _, it := range items {
		key, m := msg(it)
		b, err := codecs.MarshalDeterministic(m)
		if err == nil {
			_, err = em.Emit(key, b)
		}
		if err != nil {
			t.Error(err)
		}
	}
	if err := em.Finish(); err != nil {
		t.Error(err)
	}
}

func startView(t *testing.T, k kafkacfg.Options, mk func([]goka.ViewOption) (interface{ Run(context.Context) error }, error)) any {
	v, err := mk(append(k.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir()))))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, v.Run)
	return v
}

// consumeAll reads every message of topic, each partition in offset order.
func consumeAll(t *testing.T, k kafkacfg.Options, topic string) []*sarama.ConsumerMessage {
	c, err := sarama.NewConsumer(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

func diffReservations(got, want []inventory.Reservation) string {
	byID := map[string]inventory.Reservation{}
	for _, r := range want {
		byID[r.ID] = r
	}
	out := fmt.Sprintf("processor has %d, pure fold %d\n", len(got), len(want))
	n := 0
	for _, r := range got {
		w, ok := byID[r.ID]
		delete(byID, r.ID)
		if ok && reflect.DeepEqual(r, w) {
			continue
		}
		if n++; n <= 5 {
			out += fmt.Sprintf(" processor %+v\n pure      %+v\n", r, w)
		}
	}
	for _, w := range byID {
		if n++; n <= 10 {
			out += fmt.Sprintf(" only in the pure fold: %+v\n", w)
		}
	}
	return out
}

// waitConsumed waits until group has committed every message of topic.
func waitConsumed(t *testing.T, k kafkacfg.Options, group, topic string) {
	t.Helper()
	cl, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admin, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, func() error {
		parts, err := cl.Partitions(topic)
		if err != nil {
			return err
		}
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
		if err != nil {
			return err
		}
		for _, p := range parts {
			end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			b := resp.GetBlock(topic, p)
			if end > 0 && (b == nil || b.Offset < end) {
				return fmt.Errorf("%s has not consumed %s/%d up to %d yet", group, topic, p, end)
			}
		}
		return nil
	})
}
