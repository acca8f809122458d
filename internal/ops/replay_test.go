package ops_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/emit"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/ops"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

var (
	base     = inventory.Base{Channels: []string{"marketplace", "web"}, DefaultStaleAfter: time.Hour}
	stockGrp = string(schema.StockGroup)
	supply   = string(schema.Supply)
)

// startProcess runs the processor role (every group) until the returned
// stop is called or the test ends.
func startProcess(t *testing.T, k kafkacfg.Options, dir string) context.CancelFunc {
	t.Helper()
	return testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: base, DataDir: dir})
	})
}

// genEvents makes n supply events over nSKU SKUs and two warehouses: levels
// and adjustments with unique ids (tag keeps batches apart).
func genEvents(rng *rand.Rand, tag string, nSKU, n int) []inventory.Event {
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	var evs []inventory.Event
	for i := range n {
		sku := fmt.Sprintf("SKU-%02d", rng.IntN(nSKU))
		loc := []string{"WH-1", "WH-2"}[rng.IntN(2)]
		when := at.Add(time.Duration(rng.IntN(3600)) * time.Second)
		if rng.IntN(3) == 0 {
			evs = append(evs, inventory.StockLevel{SKU: sku, Location: loc, OnHand: int64(rng.IntN(50)), AsOf: when, Sequence: uint64(rng.IntN(3))})
		} else {
			d := int64(rng.IntN(10) - 3)
			if d == 0 {
				d = 1
			}
			evs = append(evs, inventory.StockAdjustment{EventID: fmt.Sprintf("%s-%d", tag, i), SKU: sku, Location: loc, Delta: d, OccurredAt: when})
		}
	}
	return evs
}

func emitEvents(t *testing.T, k kafkacfg.Options, evs []inventory.Event) {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range evs {
		env, err := codecs.SupplyEventToProto(e)
		if err != nil {
			t.Fatal(err)
		}
		line, err := protojson.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	sum, err := emit.Emit(context.Background(), emit.Options{Kafka: k, Topic: supply, Input: &buf})
	if err != nil || sum.Emitted != len(evs) {
		t.Fatalf("emit: %d of %d: %v", sum.Emitted, len(evs), err)
	}
}

func produceRaw(t *testing.T, k kafkacfg.Options, key string, value []byte) {
	t.Helper()
	c := k.Sarama()
	c.Producer.Partitioner = schema.Partitioner()
	p, err := sarama.NewSyncProducer(k.Brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: supply, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}

// perPartition counts keys per supply partition.
func perPartition(keys ...string) map[int32]int64 {
	n := map[int32]int64{}
	for _, k := range keys {
		n[schema.Partition(k, testkit.Partitions)]++
	}
	return n
}

func skus(evs []inventory.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventSKU())
	}
	return out
}

// evalAt is the fixed time answers are compared at.
var evalAt = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// foldAnswers is the pure fold of evs, evaluated: what the tables must
// answer.
func foldAnswers(t *testing.T, evs []inventory.Event) map[string]*pb.Availability {
	t.Helper()
	states := map[string]inventory.State{}
	for _, e := range evs {
		s, _, err := inventory.Apply(states[e.EventSKU()], e, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		states[e.EventSKU()] = s
	}
	out := map[string]*pb.Availability{}
	for sku, s := range states {
		out[sku] = codecs.SnapshotToProto(inventory.Evaluate(s, base.Policies(), evalAt))
	}
	return out
}

func stockView(t *testing.T, k kafkacfg.Options) *views.Stock {
	t.Helper()
	v, err := views.NewStock(k.Brokers, append(k.ViewOptions(), goka.WithViewStorageBuilder(storage.DefaultBuilder(t.TempDir())))...)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, v.Run)
	return v
}

// tableAnswers evaluates the stock table's state of every SKU in want.
func tableAnswers(v *views.Stock, want map[string]*pb.Availability) (map[string]*pb.Availability, error) {
	got := map[string]*pb.Availability{}
	for sku := range want {
		s, ok, err := v.Get(sku)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("SKU %s not in the stock table", sku)
		}
		got[sku] = codecs.SnapshotToProto(inventory.Evaluate(s, base.Policies(), evalAt))
	}
	return got, nil
}

func sameAnswers(got, want map[string]*pb.Availability) error {
	for sku, w := range want {
		if !proto.Equal(got[sku], w) {
			return fmt.Errorf("SKU %s:\n got %v\nwant %v", sku, got[sku], w)
		}
	}
	return nil
}

// waitTable waits until the stock table answers want for every SKU, and
// returns the answers.
func waitTable(t *testing.T, v *views.Stock, want map[string]*pb.Availability) map[string]*pb.Availability {
	t.Helper()
	var got map[string]*pb.Availability
	testkit.Eventually(t, 60*time.Second, func() error {
		var err error
		if got, err = tableAnswers(v, want); err != nil {
			return err
		}
		return sameAnswers(got, want)
	})
	return got
}

func status(t *testing.T, k kafkacfg.Options) ops.Report {
	t.Helper()
	r, err := ops.Status(context.Background(), ops.StatusOptions{Kafka: k})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return r
}

// waitStatus waits until cond holds of a status report and returns it.
func waitStatus(t *testing.T, k kafkacfg.Options, what string, cond func(ops.Report) error) ops.Report {
	t.Helper()
	var r ops.Report
	testkit.Eventually(t, 90*time.Second, func() error {
		var err error
		if r, err = ops.Status(context.Background(), ops.StatusOptions{Kafka: k}); err != nil {
			return err
		}
		if err := cond(r); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	return r
}

func stockStatus(r ops.Report) ops.GroupStatus {
	g, _ := r.Group(stockGrp)
	return g
}

// committed is a group's committed offsets on topic by partition.
func committed(g ops.GroupStatus, topic string) map[int32]int64 {
	out := map[int32]int64{}
	for _, p := range g.Inputs {
		if p.Topic == topic {
			out[p.Partition] = p.Committed
		}
	}
	return out
}

// nextMilli returns a time after every message produced so far and before
// every one produced after the call: message timestamps are milliseconds.
func nextMilli() time.Time {
	at := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	for time.Now().Before(at) { // at most a millisecond
	}
	return at
}

// Status shows the groups, members, partitions and lag of a running
// process; replay refuses while it runs and names its members; after it
// stops, a dry run prints from and to and changes nothing, a run to a time
// moves the committed offsets to that time, and --to-earliest re-processes
// everything into the same table.
func TestStatusAndReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	stop := startProcess(t, k, dir)

	first := genEvents(rng, "a", 8, 60)
	emitEvents(t, k, first)
	produceRaw(t, k, "SKU-BAD", []byte("not protobuf \xff"))
	at := nextMilli()
	second := genEvents(rng, "b", 8, 40)
	emitEvents(t, k, second)
	all := append(append([]inventory.Event{}, first...), second...)
	total := int64(len(all) + 1)

	r := waitStatus(t, k, "stock group caught up with one member", func(r ops.Report) error {
		g := stockStatus(r)
		if g.State != "Stable" || len(g.Members) != 1 {
			return fmt.Errorf("stock group %s with %d members", g.State, len(g.Members))
		}
		var sum int64
		for _, c := range committed(g, supply) {
			sum += c
		}
		if sum != total || g.TopicLag(supply) != 0 {
			return fmt.Errorf("supply committed %d of %d, lag %d", sum, total, g.TopicLag(supply))
		}
		if r.DeadLetters.Total < 1 {
			return errors.New("no dead letter counted yet")
		}
		return nil
	})
	view := stockView(t, k) // the process has created the table topic
	g := stockStatus(r)
	member := g.Members[0]
	if member.ClientID == "" || member.Host == "" {
		t.Errorf("member %+v: want a client id and a host", member)
	}
	owned := 0
	for _, tp := range member.Partitions {
		owned += len(tp.Partitions)
	}
	if want := 4 * testkit.Partitions; owned != want || len(g.Inputs) != want {
		t.Errorf("the one member owns %d partitions and the group has %d inputs, want %d (4 topics x %d)", owned, len(g.Inputs), want, testkit.Partitions)
	}
	for _, p := range g.Inputs {
		if p.Owner != member.ID {
			t.Errorf("%s/%d owned by %q, want %q", p.Topic, p.Partition, p.Owner, member.ID)
		}
	}
	for _, name := range []string{string(schema.PoliciesGroup), string(schema.OrdersGroup)} {
		if pg, ok := r.Group(name); !ok || len(pg.Members) != 1 {
			t.Errorf("group %s: %+v, want it listed with one member", name, pg)
		}
	}
	if tbl := r.Tables[0]; tbl.Table != string(schema.StockTable) || tbl.Records < 8 || len(tbl.Partitions) != testkit.Partitions {
		t.Errorf("stock table status %+v: want %d partitions and a record per SKU at least", tbl, testkit.Partitions)
	}
	if rc := r.DeadLetters.Reasons[0]; rc.Group != stockGrp || rc.Topic != supply || !strings.Contains(rc.Reason, "malformed") || rc.Class != schema.ReasonMalformed {
		t.Errorf("dead letter reason %+v: want the stock group's malformed supply message", rc)
	}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"GROUP skuflow-stock  state Stable  members 1  lag 0", member.ID, "supply 0-3", "skuflow-stock-table", "DEAD LETTERS  total 1", "malformed"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("status text lacks %q:\n%s", w, text.String())
		}
	}
	t.Logf("status while running:\n%s", text.String())

	// Refused while the process runs, naming its member.
	_, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: stockGrp, ToEarliest: true, DryRun: true})
	var live *ops.LiveMembersError
	if !errors.As(err, &live) || len(live.Members) != 1 || live.Members[0].ID != member.ID || !strings.Contains(err.Error(), member.ID) || !strings.Contains(err.Error(), member.ClientID) {
		t.Fatalf("replay while running: %v, want a *LiveMembersError naming member %s", err, member.ID)
	}

	want := foldAnswers(t, all)
	before := waitTable(t, view, want)

	stop()
	waitStatus(t, k, "stock group empty after the process stopped", func(r ops.Report) error {
		if g := stockStatus(r); len(g.Members) != 0 || g.State != "Empty" {
			return fmt.Errorf("stock group %s with %d members", g.State, len(g.Members))
		}
		return nil
	})

	// Dry run to the time between the batches: from the head, to the end
	// of the first batch (and the bad message); nothing moves.
	firstPer := perPartition(append(skus(first), "SKU-BAD")...)
	allPer := perPartition(append(skus(all), "SKU-BAD")...)
	plan, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: stockGrp, ToTime: at, DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if plan.Committed || len(plan.Partitions) != 4*testkit.Partitions {
		t.Fatalf("dry run plan %+v", plan)
	}
	for _, m := range plan.Partitions {
		if m.Topic == supply && (m.From != allPer[m.Partition] || m.To != firstPer[m.Partition]) {
			t.Errorf("dry run supply/%d: from %d to %d, want from %d to %d", m.Partition, m.From, m.To, allPer[m.Partition], firstPer[m.Partition])
		}
		if m.Topic != supply && (m.To != m.Head || m.Head != 0) {
			t.Errorf("dry run %s/%d: %+v, want an empty partition staying at 0", m.Topic, m.Partition, m)
		}
	}
	if got := committed(stockStatus(status(t, k)), supply); fmt.Sprint(got) != fmt.Sprint(allPer) {
		t.Errorf("after the dry run supply is committed at %v, want unchanged %v", got, allPer)
	}

	// A real run moves the committed offsets to the time.
	plan, err = ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: stockGrp, ToTime: at})
	if err != nil || !plan.Committed {
		t.Fatalf("replay to %s: %+v, %v", at, plan, err)
	}
	g = stockStatus(status(t, k))
	if got := committed(g, supply); fmt.Sprint(got) != fmt.Sprint(firstPer) {
		t.Errorf("after replay to the time supply is committed at %v, want %v", got, firstPer)
	}
	if lag := g.TopicLag(supply); lag != int64(len(second)) {
		t.Errorf("supply lag %d after replay to the time, want the second batch's %d", lag, len(second))
	}

	// To the earliest, restart: everything is processed again, and the
	// idempotent rules leave the table as it was.
	if _, err := ops.Replay(context.Background(), ops.ReplayOptions{Kafka: k, Group: stockGrp, ToEarliest: true}); err != nil {
		t.Fatalf("replay to earliest: %v", err)
	}
	if lag := stockStatus(status(t, k)).TopicLag(supply); lag != total {
		t.Errorf("supply lag %d after replay to earliest, want %d", lag, total)
	}
	startProcess(t, k, dir)
	waitStatus(t, k, "stock group caught up again", func(r ops.Report) error {
		if g := stockStatus(r); len(g.Members) != 1 || g.Lag != 0 {
			return fmt.Errorf("stock group %s with %d members, lag %d", g.State, len(g.Members), g.Lag)
		}
		return nil
	})
	after := waitTable(t, view, want)
	if err := sameAnswers(after, before); err != nil {
		t.Errorf("availability after re-processing from the earliest differs from before: %v", err)
	}
	if r := status(t, k); r.DeadLetters.Total != 2 {
		t.Errorf("dead letters %d after re-processing, want 2 (the bad message again)", r.DeadLetters.Total)
	}
}
