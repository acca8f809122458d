package roles

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/processors/stock"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// MaxEmitLine bounds one JSON line given to Emit.
const MaxEmitLine = 1 << 20

// EmitOptions configure Emit.
type EmitOptions struct {
	Kafka kafkacfg.Options
	// Topic to publish to; only "supply" is accepted so far.
	Topic string
	// Input holds one protojson skuflow.v1.SupplyEvent per line; blank lines
	// and lines starting with '#' are skipped.
	Input io.Reader
	// Rejected receives a line per invalid input line (may be nil).
	Rejected io.Writer
}

// EmitSummary counts what Emit did.
type EmitSummary struct {
	Emitted, Rejected int
}

// Emit publishes events given as JSON lines, keyed by SKU and partitioned the
// way goka's processors expect (FNV-1a). Invalid lines are reported with
// their line number and skipped; the others are published. It returns an
// error if any line was rejected or any publish failed.
func Emit(ctx context.Context, o EmitOptions) (EmitSummary, error) {
	var sum EmitSummary
	if err := o.Kafka.Validate(); err != nil {
		return sum, err
	}
	if o.Topic != string(stock.SupplyTopic) {
		return sum, fmt.Errorf("topic %q is not supported: emit publishes to %q", o.Topic, stock.SupplyTopic)
	}
	if err := o.Kafka.EnsureTopics(stock.Topics...); err != nil {
		return sum, err
	}
	em, err := goka.NewEmitter(o.Kafka.Brokers, goka.Stream(o.Topic), new(codec.Bytes), o.Kafka.EmitterOptions()...)
	if err != nil {
		return sum, fmt.Errorf("emitter: %w", err)
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	sc := bufio.NewScanner(o.Input)
	sc.Buffer(make([]byte, 64*1024), MaxEmitLine)
	line := 0
	reject := func(msg string) {
		sum.Rejected++
		if o.Rejected != nil {
			fmt.Fprintf(o.Rejected, "line %d: %s\n", line, msg)
		}
	}
	for sc.Scan() && ctx.Err() == nil {
		line++
		text := sc.Bytes()
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		var env pb.SupplyEvent
		if err := protojson.Unmarshal(text, &env); err != nil {
			reject(fmt.Sprintf("not a skuflow.v1.SupplyEvent: %v", err))
			continue
		}
		ev, err := codecs.SupplyEventFromProto(&env)
		if err == nil {
			err = ev.Validate()
		}
		if err != nil {
			reject(err.Error())
			continue
		}
		value, err := codecs.EncodeSupplyEvent(ev)
		if err != nil {
			reject(err.Error())
			continue
		}
		sum.Emitted++ // attempted; failures are subtracted below
		p, err := em.Emit(ev.EventSKU(), value)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
			continue
		}
		p.Then(func(err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	scanErr := sc.Err()
	if scanErr != nil {
		scanErr = fmt.Errorf("reading input after line %d: %w", line, scanErr)
	}
	finishErr := em.Finish()
	var errs []error
	errs = append(errs, scanErr, ctx.Err(), finishErr)
	if n := failed.Load(); n > 0 {
		sum.Emitted -= int(n)
		errs = append(errs, fmt.Errorf("%d events failed to publish, first: %v", n, firstErr.Load()))
	}
	if sum.Rejected > 0 {
		errs = append(errs, fmt.Errorf("%d invalid lines rejected", sum.Rejected))
	}
	return sum, errors.Join(errs...)
}
