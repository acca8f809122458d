package deadletters_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/deadletters"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/internal/testkit"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

func TestOptionsValidate(t *testing.T) {
	k := kafkacfg.Options{Brokers: []string{"127.0.0.1:9092"}, Partitions: 1, Replication: 1}
	good := deadletters.RedriveOptions{Kafka: k, Filter: deadletters.Filter{Since: time.Unix(1, 0), Topic: "supply"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	for name, tc := range map[string]struct {
		mod  func(*deadletters.RedriveOptions)
		want string
	}{
		"no since":       {func(o *deadletters.RedriveOptions) { o.Filter.Since = time.Time{} }, "since"},
		"unknown topic":  {func(o *deadletters.RedriveOptions) { o.Filter.Topic = "nope" }, `"nope"`},
		"a table":        {func(o *deadletters.RedriveOptions) { o.Filter.Topic = string(schema.StockTable) }, "input streams"},
		"the dead topic": {func(o *deadletters.RedriveOptions) { o.Filter.Topic = string(schema.DeadLetter) }, "input streams"},
		"no brokers":     {func(o *deadletters.RedriveOptions) { o.Kafka.Brokers = nil }, "broker"},
	} {
		o := good
		tc.mod(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %s", name, err, tc.want)
		}
		if _, err := deadletters.Redrive(context.Background(), o); err == nil {
			t.Errorf("%s: Redrive ran with invalid options", name)
		}
	}
	if err := (deadletters.ListOptions{Kafka: k}).Validate(); err != nil {
		t.Errorf("list needs no filter: %v", err)
	}
}

func TestSummary(t *testing.T) {
	ev, _ := proto.Marshal(&pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{ReservationId: "r-1", Sku: "S", Channel: "kiosk"}}})
	for _, tc := range []struct {
		l    deadletters.Letter
		want string
	}{
		{deadletters.Letter{Topic: "demand", Value: ev}, `"channel":"kiosk"`},
		{deadletters.Letter{Topic: "supply", Value: []byte("not protobuf \xff")}, "14 bytes, undecodable: 6e6f74"},
		{deadletters.Letter{Topic: "elsewhere", Value: []byte{1, 2}}, "2 bytes, undecodable: 0102"},
		{deadletters.Letter{Topic: "supply"}, "tombstone"},
	} {
		if got := tc.l.Summary(); !strings.Contains(got, tc.want) {
			t.Errorf("Summary of %s %x = %q, want it to contain %q", tc.l.Topic, tc.l.Value, got, tc.want)
		}
	}
}

// readAll reads topic from the oldest record to its head.
func readAll(t *testing.T, k kafkacfg.Options, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cons, err := sarama.NewConsumerFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		head, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if head == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			out = append(out, m)
			if m.Offset >= head-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

func produce(t *testing.T, k kafkacfg.Options, topic, key string, value []byte) {
	t.Helper()
	c := k.Sarama()
	c.Producer.Partitioner = schema.Partitioner()
	c.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(k.Brokers, c)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
		t.Fatal(err)
	}
}

// outcomesFor are the decisions on the outcomes topic for reservation id.
func outcomesFor(t *testing.T, k kafkacfg.Options, id string) []*pb.ReservationOutcome {
	var out []*pb.ReservationOutcome
	for _, m := range readAll(t, k, string(schema.Outcomes)) {
		var o pb.ReservationOutcome
		if err := proto.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		if o.GetReservationId() == id {
			out = append(out, &o)
		}
	}
	return out
}

// A reservation request on a channel the processors do not serve is
// dead-lettered; list shows it decoded. The channel is configured (the
// fix: processors restarted with it), redrive re-sends it once and it is
// decided once; a second redrive sends nothing and changes nothing.
func TestListAndRedriveOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	k := b.Kafka
	dir := t.TempDir()
	start := time.Now().Add(-time.Second)
	web := inventory.Base{Channels: []string{"web"}, DefaultStaleAfter: time.Hour}
	stop := testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: web, DataDir: dir})
	})

	level, err := proto.Marshal(&pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
		Sku: "SKU-R", Location: "L1", OnHand: 10, AsOf: timestamppb.New(start.Add(-time.Minute)), Sequence: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, k, string(schema.Supply), "SKU-R", level)
	produce(t, k, string(schema.Supply), "SKU-R-BAD", []byte("not protobuf \xff"))
	req, err := proto.Marshal(&pb.DemandEvent{Event: &pb.DemandEvent_Requested{Requested: &pb.ReservationRequested{
		ReservationId: "r-kiosk", OrderId: "o-kiosk", Sku: "SKU-R", Quantity: 3, Channel: "kiosk", Ttl: durationpb.New(time.Hour)}}})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, k, string(schema.Demand), "SKU-R", req)

	ctx := context.Background()
	var letters []deadletters.Letter
	testkit.Eventually(t, 60*time.Second, func() error {
		var err error
		letters, err = deadletters.List(ctx, deadletters.ListOptions{Kafka: k, Filter: deadletters.Filter{Since: start}})
		if err != nil {
			return err
		}
		if len(letters) != 2 {
			return fmt.Errorf("%d dead letters, want 2", len(letters))
		}
		return nil
	})
	byTopic := map[string]deadletters.Letter{}
	for _, l := range letters {
		byTopic[l.Topic] = l
	}
	dl := byTopic["demand"]
	if dl.Class != schema.ReasonUnknownChannel || dl.Group != string(schema.StockGroup) || string(dl.Key) != "SKU-R" ||
		dl.MessageTime.IsZero() || dl.DeadLetteredAt.Before(start) || dl.Redriven || !strings.Contains(dl.Summary(), `"channel":"kiosk"`) {
		t.Errorf("demand letter %+v (summary %s)", dl, dl.Summary())
	}
	if bad := byTopic["supply"]; bad.Class != schema.ReasonMalformed || !strings.Contains(bad.Summary(), "undecodable") {
		t.Errorf("supply letter %+v (summary %s)", bad, bad.Summary())
	}
	// Filters.
	for _, tc := range []struct {
		f    deadletters.Filter
		want int
	}{
		{deadletters.Filter{Since: start, Reason: schema.ReasonUnknownChannel}, 1},
		{deadletters.Filter{Since: start, Reason: "MALFORMED"}, 1}, // part of the text, any case
		{deadletters.Filter{Since: start, Topic: "demand"}, 1},
		{deadletters.Filter{Since: time.Now().Add(time.Hour)}, 0},
	} {
		got, err := deadletters.List(ctx, deadletters.ListOptions{Kafka: k, Filter: tc.f})
		if err != nil || len(got) != tc.want {
			t.Errorf("List(%+v) = %d letters, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	if n := len(outcomesFor(t, k, "r-kiosk")); n != 0 {
		t.Fatalf("%d outcomes for the dead-lettered request", n)
	}

	// A dry run sends nothing.
	opts := deadletters.RedriveOptions{Kafka: k, Filter: deadletters.Filter{Since: start, Reason: schema.ReasonUnknownChannel}, DryRun: true}
	rep, err := deadletters.Redrive(ctx, opts)
	if err != nil || rep.Counts[deadletters.WouldSend] != 1 || rep.Counts[deadletters.Sent] != 0 {
		t.Fatalf("dry run: %+v, %v", rep.Counts, err)
	}
	demandBefore := len(readAll(t, k, string(schema.Demand)))

	// The fix: the processors serve the kiosk channel.
	stop()
	kiosk := inventory.Base{Channels: []string{"web", "kiosk"}, DefaultStaleAfter: time.Hour}
	testkit.Go(t, func(ctx context.Context) error {
		return app.Process(ctx, app.ProcessOptions{Kafka: k, Base: kiosk, DataDir: dir})
	})

	opts.DryRun = false
	rep, err = deadletters.Redrive(ctx, opts)
	if err != nil || rep.Counts[deadletters.Sent] != 1 || len(rep.Letters) != 1 {
		t.Fatalf("redrive: %+v, %v", rep.Counts, err)
	}
	var outs []*pb.ReservationOutcome
	testkit.Eventually(t, 60*time.Second, func() error {
		if outs = outcomesFor(t, k, "r-kiosk"); len(outs) == 0 {
			return fmt.Errorf("no outcome for the redriven request yet")
		}
		return nil
	})
	if len(outs) != 1 || !outs[0].GetAccepted() || outs[0].GetQuantity() != 3 {
		t.Fatalf("outcomes %v, want one acceptance of 3 units", outs)
	}
	demand := readAll(t, k, string(schema.Demand))
	if len(demand) != demandBefore+1 {
		t.Fatalf("demand topic grew by %d, want 1", len(demand)-demandBefore)
	}
	resent := demand[len(demand)-1]
	if string(resent.Key) != "SKU-R" || !proto.Equal(mustDemand(t, resent.Value), mustDemand(t, req)) ||
		!resent.Timestamp.Equal(dl.MessageTime) || !hasHeader(resent, schema.HeaderRedrivenFrom, schema.DeadLetterKey(dl.Partition, dl.Offset)) {
		t.Errorf("re-sent %q %x at %v headers %v; want the original key, bytes, message time %v and the redriven-from header",
			resent.Key, resent.Value, resent.Timestamp, resent.Headers, dl.MessageTime)
	}

	// Again: nothing is sent, nothing changes.
	rep, err = deadletters.Redrive(ctx, opts)
	if err != nil || rep.Counts[deadletters.Sent] != 0 || rep.Counts[deadletters.AlreadyRedriven] != 1 {
		t.Fatalf("second redrive: %+v, %v", rep.Counts, err)
	}
	if n := len(readAll(t, k, string(schema.Demand))); n != len(demand) {
		t.Errorf("second redrive changed the demand topic: %d messages, was %d", n, len(demand))
	}
	if got := outcomesFor(t, k, "r-kiosk"); len(got) != 1 {
		t.Errorf("%d outcomes after the second redrive, want 1", len(got))
	}
	got, err := deadletters.List(ctx, deadletters.ListOptions{Kafka: k, Filter: deadletters.Filter{Since: start, Topic: "demand"}})
	if err != nil || len(got) != 1 || !got[0].Redriven {
		t.Errorf("list after redrive: %+v, %v; want the letter marked redriven", got, err)
	}
	// A redrive of every letter since start re-sends the others (the
	// malformed supply message; the orders group's letter for the outcome
	// of an order it never placed) and leaves the kiosk letter done.
	all, err := deadletters.Redrive(ctx, deadletters.RedriveOptions{Kafka: k, Filter: deadletters.Filter{Since: start}})
	if err != nil || all.Counts[deadletters.AlreadyRedriven] != 1 || all.Counts[deadletters.Sent] != len(all.Letters)-1 {
		t.Errorf("redrive of all: %+v, %v", all.Counts, err)
	}
	for _, r := range all.Letters {
		if r.Letter.Topic == "demand" && r.Action != deadletters.AlreadyRedriven {
			t.Errorf("kiosk letter %s again", r.Action)
		}
	}
	if n := len(readAll(t, k, string(schema.Demand))); n != len(demand) {
		t.Errorf("the demand topic changed: %d messages, was %d", n, len(demand))
	}

	// Those two are rejected again: their new letters name the letters they
	// came from, and a further redrive skips them instead of looping.
	testkit.Eventually(t, 60*time.Second, func() error {
		got, err := deadletters.List(ctx, deadletters.ListOptions{Kafka: k, Filter: deadletters.Filter{Since: start}})
		if err != nil {
			return err
		}
		again := 0
		for _, l := range got {
			if l.RedriveOf != "" {
				again++
			}
		}
		if again != all.Counts[deadletters.Sent] {
			return fmt.Errorf("%d letters of re-driven messages, want %d", again, all.Counts[deadletters.Sent])
		}
		return nil
	})
	last, err := deadletters.Redrive(ctx, deadletters.RedriveOptions{Kafka: k, Filter: deadletters.Filter{Since: start}})
	if err != nil || last.Counts[deadletters.Sent] != 0 || last.Counts[deadletters.Skipped] != all.Counts[deadletters.Sent] {
		t.Errorf("redrive after the re-sent letters failed again: %+v, %v; want nothing sent, each skipped", last.Counts, err)
	}
}

func mustDemand(t *testing.T, b []byte) *pb.DemandEvent {
	t.Helper()
	var ev pb.DemandEvent
	if err := proto.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func hasHeader(m *sarama.ConsumerMessage, key, value string) bool {
	for _, h := range m.Headers {
		if string(h.Key) == key && string(h.Value) == value {
			return true
		}
	}
	return false
}
