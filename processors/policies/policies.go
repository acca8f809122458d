// Package policies is the policies processor group: it folds location-wide
// and merchant-wide policies (eligibility, closure, safety-stock default,
// merchant staleness TTL) into a table keyed "location/<id>" or
// "merchant/<id>", newest as_of wins. The stock processor reads it with
// goka.Lookup and the gateway with a view, so a policy change applies to
// every SKU at once without touching any SKU's data.
package policies

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors"
	"github.com/skuflow/skuflow/processors/deadletter"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

const (
	// Group is the goka group; its table is Table.
	Group goka.Group = "skuflow-policies"
	// Topic carries skuflow.v1.PolicyEvent keyed by LocationKey/MerchantKey.
	Topic goka.Stream = "policies"
)

// Table holds the winning skuflow.v1.PolicyEvent per key.
var Table = goka.GroupTable(Group)

// Topics the group needs before it starts.
var Topics = []kafkacfg.Topic{
	{Name: string(Topic)},
	{Name: string(Table), Compacted: true},
	{Name: string(deadletter.Topic)},
}

// LocationKey is the message and table key of a location's policy.
func LocationKey(location string) string { return "location/" + location }

// MerchantKey is the message and table key of a merchant's policy.
func MerchantKey(merchant string) string { return "merchant/" + merchant }

// KeyOf returns the key a policy event must be published under.
func KeyOf(ev *pb.PolicyEvent) (string, error) {
	switch p := ev.GetPolicy().(type) {
	case *pb.PolicyEvent_Location:
		return LocationKey(p.Location.GetLocation()), nil
	case *pb.PolicyEvent_Merchant:
		return MerchantKey(p.Merchant.GetMerchantId()), nil
	}
	return "", fmt.Errorf("%w: policy envelope has no policy set", codecs.ErrMalformed)
}

// Define returns the group graph.
func Define(log *slog.Logger) *goka.GroupGraph {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := handler{log: log.With("group", string(Group))}
	return goka.DefineGroup(Group,
		goka.Input(Topic, new(codec.Bytes), h.policy),
		goka.Persist(codecs.PolicyTable),
		deadletter.Output(),
	)
}

// New builds the processor.
func New(brokers []string, log *slog.Logger, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	return processors.NewProcessor(brokers, Define(log), opts...)
}

type handler struct{ log *slog.Logger }

func (h handler) policy(ctx goka.Context, msg any) {
	raw, ok := deadletter.Value(ctx, h.log, msg)
	if !ok {
		return
	}
	ev, err := codecs.DecodePolicyEvent(raw)
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	next, changed, err := fold(ctx.Key(), ev, current(ctx))
	if err != nil {
		deadletter.Send(ctx, h.log, raw, err.Error())
		return
	}
	processors.Store(ctx, next, changed)
}

func current(ctx goka.Context) *pb.PolicyEvent {
	cur, _ := ctx.Value().(*pb.PolicyEvent)
	return cur
}

// fold applies ev, received under key, to the current table value.
func fold(key string, ev, cur *pb.PolicyEvent) (*pb.PolicyEvent, bool, error) {
	want, err := KeyOf(ev)
	if err != nil {
		return nil, false, err
	}
	if key != want {
		return nil, false, fmt.Errorf("message key %q differs from the policy's key %q", key, want)
	}
	switch p := ev.GetPolicy().(type) {
	case *pb.PolicyEvent_Location:
		in, err := codecs.LocationPolicyFromProto(p.Location)
		if err != nil {
			return nil, false, err
		}
		old, found, err := LocationFrom(cur)
		if err != nil {
			return nil, false, err
		}
		out, res, err := inventory.ApplyLocationPolicy(old, found, in)
		if err != nil || !res.Changed {
			return nil, false, err
		}
		return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Location{Location: codecs.LocationPolicyToProto(out)}}, true, nil
	case *pb.PolicyEvent_Merchant:
		in, err := codecs.MerchantPolicyFromProto(p.Merchant)
		if err != nil {
			return nil, false, err
		}
		old, found, err := MerchantFrom(cur)
		if err != nil {
			return nil, false, err
		}
		out, res, err := inventory.ApplyMerchantPolicy(old, found, in)
		if err != nil || !res.Changed {
			return nil, false, err
		}
		return &pb.PolicyEvent{Policy: &pb.PolicyEvent_Merchant{Merchant: codecs.MerchantPolicyToProto(out)}}, true, nil
	}
	return nil, false, fmt.Errorf("%w: unsupported policy %T", codecs.ErrMalformed, ev.GetPolicy())
}

// LocationFrom reads a location policy from a table value (nil: none).
func LocationFrom(v *pb.PolicyEvent) (inventory.LocationPolicy, bool, error) {
	if v == nil {
		return inventory.LocationPolicy{}, false, nil
	}
	l := v.GetLocation()
	if l == nil {
		return inventory.LocationPolicy{}, false, errors.New("policies table: value under a location key is not a location policy")
	}
	p, err := codecs.LocationPolicyFromProto(l)
	return p, err == nil, err
}

// MerchantFrom reads a merchant policy from a table value (nil: none).
func MerchantFrom(v *pb.PolicyEvent) (inventory.MerchantPolicy, bool, error) {
	if v == nil {
		return inventory.MerchantPolicy{}, false, nil
	}
	m := v.GetMerchant()
	if m == nil {
		return inventory.MerchantPolicy{}, false, errors.New("policies table: value under a merchant key is not a merchant policy")
	}
	p, err := codecs.MerchantPolicyFromProto(m)
	return p, err == nil, err
}

// Getter reads one policies-table value by key; nil means none.
type Getter func(key string) (*pb.PolicyEvent, error)

// Gather collects the policies of a SKU's locations (and of their
// merchants) into base, which carries the channels and default TTL.
func Gather(s inventory.State, get Getter, base inventory.Policies) (inventory.Policies, error) {
	out := base
	out.Locations = map[string]inventory.LocationPolicy{}
	out.Merchants = map[string]inventory.MerchantPolicy{}
	var errs []error
	for _, id := range s.LocationIDs() {
		v, err := get(LocationKey(id))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lp, found, err := LocationFrom(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("location %s: %w", id, err))
			continue
		}
		if !found {
			continue
		}
		out.Locations[id] = lp
		if lp.Kind != inventory.KindMerchant || lp.MerchantID == "" {
			continue
		}
		if _, seen := out.Merchants[lp.MerchantID]; seen {
			continue
		}
		mv, err := get(MerchantKey(lp.MerchantID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		mp, found, err := MerchantFrom(mv)
		if err != nil {
			errs = append(errs, fmt.Errorf("merchant %s: %w", lp.MerchantID, err))
			continue
		}
		if found {
			out.Merchants[lp.MerchantID] = mp
		}
	}
	return out, errors.Join(errs...)
}
