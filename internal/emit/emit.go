// Package emit publishes events given as protojson lines (the CLI's
// `skuflow emit` and the sample data of `skuflow dev`), validated as the
// processors will, keyed and partitioned as package schema says.
package emit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// MaxLine bounds one JSON line given to Emit.
const MaxLine = 1 << 20

// Topics are the topics Emit publishes to, with the protojson message
// each line must hold.
var Topics = map[string]string{
	string(schema.Supply):      "skuflow.v1.SupplyEvent",
	string(schema.SkuPolicies): "skuflow.v1.SkuPolicyEvent",
	string(schema.Policies):    "skuflow.v1.PolicyEvent",
	// For operators: a fulfilment (ReservationFulfilled) or release of a
	// reservation no order owns; an order's go through FulfilOrder and
	// CancelOrder, or the order would not know. Requests and extensions
	// are the order saga's to send.
	string(schema.Demand): "skuflow.v1.DemandEvent",
}

// parseLine turns one JSON line for topic into its message key and bytes,
// validating it as the processors will.
func parseLine(topic string, line []byte) (string, []byte, error) {
	var env proto.Message
	var key func() (string, error)
	switch topic {
	case string(schema.Supply):
		e := new(pb.SupplyEvent)
		env, key = e, func() (string, error) { return validSKU(codecs.SupplyEventFromProto(e)) }
	case string(schema.SkuPolicies):
		e := new(pb.SkuPolicyEvent)
		env, key = e, func() (string, error) { return validSKU(codecs.SkuPolicyEventFromProto(e)) }
	case string(schema.Policies):
		e := new(pb.PolicyEvent)
		env, key = e, func() (string, error) { return validPolicy(e) }
	case string(schema.Demand):
		e := new(pb.DemandEvent)
		env, key = e, func() (string, error) {
			switch e.GetEvent().(type) {
			case *pb.DemandEvent_Requested, *pb.DemandEvent_Extended:
				// Requests and extensions belong to the order saga: sent by
				// hand, the saga would never learn of their outcome.
				return "", errors.New("reservation requests and extensions are the order saga's to send (PlaceOrder, ExtendOrder), or orders would not learn of them; emit takes fulfilments and releases")
			}
			b, err := codecs.MarshalDeterministic(e)
			if err != nil {
				return "", err
			}
			return validSKU(codecs.DecodeDemandEvent(b))
		}
	default:
		return "", nil, fmt.Errorf("topic %q is not one emit publishes to", topic)
	}
	if err := protojson.Unmarshal(line, env); err != nil {
		return "", nil, fmt.Errorf("not a %s: %v", env.ProtoReflect().Descriptor().FullName(), err)
	}
	k, err := key()
	if err != nil {
		return "", nil, err
	}
	b, err := codecs.MarshalDeterministic(env)
	return k, b, err
}

// validSKU validates a SKU-keyed event and returns its key.
func validSKU(ev inventory.Event, err error) (string, error) {
	if err == nil {
		err = ev.Validate()
	}
	if err != nil {
		return "", err
	}
	return ev.EventSKU(), nil
}

// validPolicy validates a location or merchant policy and returns its key.
func validPolicy(env *pb.PolicyEvent) (string, error) {
	key, err := schema.PolicyKey(env)
	if err != nil {
		return "", err
	}
	if l := env.GetLocation(); l != nil {
		p, err := codecs.LocationPolicyFromProto(l)
		if err == nil {
			err = p.Validate()
		}
		return key, err
	}
	p, err := codecs.MerchantPolicyFromProto(env.GetMerchant())
	if err == nil {
		err = p.Validate()
	}
	return key, err
}

// Options configure Emit.
type Options struct {
	Kafka kafkacfg.Options
	// Topic to publish to: one of Topics.
	Topic string
	// Input holds one protojson message of the topic's type per line; blank
	// lines and lines starting with '#' are skipped.
	Input io.Reader
	// Rejected receives a line per invalid input line (may be nil).
	Rejected io.Writer
}

// Summary counts what Emit did.
type Summary struct {
	Emitted, Rejected int
}

// Emit publishes events given as JSON lines, keyed (by SKU, or by location or
// merchant for policies) and partitioned the way goka's processors expect
// (FNV-1a). Invalid lines are reported with
// their line number and skipped; the others are published. It returns an
// error if any line was rejected or any publish failed.
func Emit(ctx context.Context, o Options) (Summary, error) {
	var sum Summary
	if err := o.Kafka.Validate(); err != nil {
		return sum, err
	}
	if _, ok := Topics[o.Topic]; !ok {
		return sum, fmt.Errorf("topic %q is not supported: emit publishes to %s", o.Topic, strings.Join(slices.Sorted(maps.Keys(Topics)), ", "))
	}
	if err := o.Kafka.EnsureTopics(schema.Topics()...); err != nil {
		return sum, err
	}
	em, err := goka.NewEmitter(o.Kafka.Brokers, goka.Stream(o.Topic), schema.BytesCodec, o.Kafka.EmitterOptions()...)
	if err != nil {
		return sum, fmt.Errorf("emitter: %w", err)
	}
	var failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		failed.Add(1)
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	sc := bufio.NewScanner(o.Input)
	sc.Buffer(make([]byte, 64*1024), MaxLine)
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
		key, value, err := parseLine(o.Topic, text)
		if err != nil {
			reject(err.Error())
			continue
		}
		sum.Emitted++ // attempted; failures are subtracted below
		p, err := em.Emit(key, value)
		if err != nil {
			fail(err)
			continue
		}
		p.Then(func(err error) {
			if err != nil {
				fail(err)
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
		errMu.Lock()
		errs = append(errs, fmt.Errorf("%d events failed to publish, first: %w", n, firstErr))
		errMu.Unlock()
	}
	if sum.Rejected > 0 {
		errs = append(errs, fmt.Errorf("%d invalid lines rejected", sum.Rejected))
	}
	return sum, errors.Join(errs...)
}
