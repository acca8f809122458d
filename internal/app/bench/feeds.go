package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/skuflow/skuflow/internal/app"
	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/internal/feeds/publisher"
	"github.com/skuflow/skuflow/internal/feeds/service"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// The feeds scenarios measure a merchant feed of --messages CSV rows: through
// the REST endpoint (parse, validate, fsynced outbox, acks=all publisher)
// until every row is on the supply topic, beside raw sarama produce of the
// same rows with the same producer settings. Run them with
// `skuflow bench --scenarios feeds-sarama,feeds --messages 1000000`.
func init() {
	scenarios["feeds-sarama"] = scenario{"raw sarama produce of the feed's rows to supply (acks=all, FNV-1a)", runFeedsSarama}
	scenarios["feeds"] = scenario{"CSV feed via REST -> fsynced outbox -> publisher -> supply (rows/s)", runFeeds}
}

const benchMerchant = "BENCH-M"

var benchAsOf = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// feedRow is row i of the benchmark feed: SKUs over Keys, four locations.
func feedRow(rng *rand.Rand, o Options) (sku, loc string, onHand int64) {
	return fmt.Sprintf("SKU-%07d", rng.IntN(o.Keys)), fmt.Sprintf("BENCH-L%d", rng.IntN(4)), int64(rng.IntN(1000))
}

// writeCSV streams the feed to w.
func writeCSV(w io.Writer, o Options) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	if _, err := bw.WriteString("sku,location,on_hand,as_of\n"); err != nil {
		return err
	}
	asOf := benchAsOf.Format(time.RFC3339)
	for range o.Messages {
		sku, loc, n := feedRow(rng, o)
		if _, err := fmt.Fprintf(bw, "%s,%s,%d,%s\n", sku, loc, n, asOf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// supplyCount sums the supply topic's partition high-water marks.
func supplyCount(client sarama.Client) (int64, error) {
	parts, err := client.Partitions(string(schema.Supply))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		hi, err := client.GetOffset(string(schema.Supply), p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		n += hi
	}
	return n, nil
}

func waitSupply(ctx context.Context, k kafkacfg.Options, n int64) error {
	client, err := sarama.NewClient(k.Brokers, k.Sarama())
	if err != nil {
		return err
	}
	defer client.Close()
	// Poll every 20ms until the count is reached; a failed count ends the
	// wait at once.
	var got int64
	var countErr error
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		if got, countErr = supplyCount(client); countErr != nil {
			return struct{}{}, backoff.Permanent(countErr)
		}
		if got < n {
			return struct{}{}, errSupplyShort
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(20*time.Millisecond)), backoff.WithMaxElapsedTime(0))
	switch {
	case err == nil:
		return nil
	case countErr != nil:
		return countErr
	}
	return fmt.Errorf("supply has %d of %d rows: %w", got, n, err) // err: why ctx ended
}

var errSupplyShort = errors.New("supply has fewer rows than expected")

func runFeedsSarama(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	if err := k.EnsureTopics(schema.Topics()...); err != nil {
		return Result{}, err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]string, o.Messages)
	vals := make([][]byte, o.Messages)
	ts := timestamppb.New(benchAsOf)
	for i := range o.Messages {
		sku, loc, n := feedRow(rng, o)
		v, err := proto.Marshal(&pb.SupplyEvent{Event: &pb.SupplyEvent_StockLevel{StockLevel: &pb.StockLevel{
			Sku: sku, Location: loc, OnHand: n, AsOf: ts, Sequence: uint64(i + 1)}}})
		if err != nil {
			return Result{}, err
		}
		keys[i], vals[i] = sku, v
	}
	p, err := sarama.NewAsyncProducer(k.Brokers, publisher.SaramaConfig(k))
	if err != nil {
		return Result{}, err
	}
	var acked, failed atomic.Int64
	done := make(chan struct{})
	go func() {
		for range p.Successes() {
			acked.Add(1)
		}
		close(done)
	}()
	go func() {
		for range p.Errors() {
			failed.Add(1)
		}
	}()
	start := time.Now()
	for i := range keys {
		p.Input() <- &sarama.ProducerMessage{Topic: string(schema.Supply), Key: sarama.StringEncoder(keys[i]), Value: sarama.ByteEncoder(vals[i])}
	}
	p.AsyncClose()
	<-done
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		return Result{}, fmt.Errorf("%d of %d messages failed", n, o.Messages)
	}
	return Result{Seconds: elapsed.Seconds()}, nil
}

func runFeeds(ctx context.Context, o Options, dir string) (Result, error) {
	b, k, err := cluster(o, dir)
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	lim := feeds.DefaultLimits()
	lim.MaxRows = max(lim.MaxRows, o.Messages)
	const admin = "bench-admin-token-0123456789"
	cfg := inventory.DefaultBase()
	f := app.Feeds(service.Options{Limits: lim, AdminToken: admin, DefaultStaleAfter: cfg.DefaultStaleAfter, Publish: true})
	s, err := app.NewServe(app.ServeOptions{Kafka: k, Base: cfg, DataDir: filepath.Join(dir, "gateway"),
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Services: []app.ServiceFactory{f}})
	if err != nil {
		return Result{}, err
	}
	sctx, stop := context.WithCancel(ctx)
	stopped := &stopSignal{done: make(chan struct{})}
	go func() {
		stopped.err = s.Run(sctx)
		close(stopped.done)
	}()
	defer func() { stop(); <-stopped.done }()
	base := "http://" + s.HTTPAddr()
	// Poll /readyz every 50ms until it answers 200; the gateway stopping
	// ends the wait (seen before the next poll).
	if _, err := backoff.Retry(ctx, func() (struct{}, error) {
		select {
		case <-stopped.done:
			return struct{}{}, backoff.Permanent(fmt.Errorf("gateway stopped: %v", stopped.err))
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return struct{}{}, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return struct{}{}, fmt.Errorf("readyz: %s", resp.Status)
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(50*time.Millisecond)), backoff.WithMaxElapsedTime(0)); err != nil {
		return Result{}, err
	}
	body := `{"merchantId":"` + benchMerchant + `","locations":["BENCH-L0","BENCH-L1","BENCH-L2","BENCH-L3"]}`
	var tok pb.MerchantToken
	if err := post(base+"/v1/admin/merchants", admin, "application/json", strings.NewReader(body), &tok); err != nil {
		return Result{}, fmt.Errorf("create merchant: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeCSV(pw, o)) }()
	start := time.Now()
	var st pb.FeedStatus
	if err := post(base+"/v1/merchants/"+benchMerchant+"/feeds", tok.GetToken(), "text/csv", pr, &st); err != nil {
		return Result{}, fmt.Errorf("upload: %w", err)
	}
	if int(st.GetAccepted()) != o.Messages {
		return Result{}, fmt.Errorf("accepted %d of %d rows: %s", st.GetAccepted(), o.Messages, st.GetError())
	}
	if err := waitSupply(ctx, k, int64(o.Messages)); err != nil {
		return Result{}, err
	}
	return Result{Seconds: time.Since(start).Seconds()}, nil
}

func post(url, token, ctype string, body io.Reader, out proto.Message) error {
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return errors.New(resp.Status + ": " + string(b))
	}
	return protojson.Unmarshal(b, out)
}
