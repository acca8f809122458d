package schema

import (
	"errors"
	"fmt"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// LocationKey is the message and table key of a location's policy.
func LocationKey(location string) string { return "location/" + location }

// MerchantKey is the message and table key of a merchant's policy.
func MerchantKey(merchant string) string { return "merchant/" + merchant }

// PolicyKey returns the key a policy event must be published under.
func PolicyKey(ev *pb.PolicyEvent) (string, error) {
	switch p := ev.GetPolicy().(type) {
	case *pb.PolicyEvent_Location:
		return LocationKey(p.Location.GetLocation()), nil
	case *pb.PolicyEvent_Merchant:
		return MerchantKey(p.Merchant.GetMerchantId()), nil
	}
	return "", fmt.Errorf("%w: policy envelope has no policy set", codecs.ErrMalformed)
}

// LocationFrom reads a location policy from a policies-table value (nil:
// none).
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

// MerchantFrom reads a merchant policy from a policies-table value (nil:
// none).
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

// PolicyGetter reads one policies-table value by key; nil means none.
type PolicyGetter func(key string) (*pb.PolicyEvent, error)

// Gather is the rule for which policies a SKU's answer reads: the policy of
// each of the SKU's locations, and of each merchant owning one of them. It
// collects them into base's inventory.Policies (channels and default TTL).
// The stock processor (through goka.Lookup), the gateway and the reconciler
// (through views) all call it, so they evaluate the same inputs.
func Gather(s inventory.State, get PolicyGetter, base inventory.Base) (inventory.Policies, error) {
	out := base.Policies()
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

// FoldPolicy is the policies group's rule, for the group and for whoever
// folds the policies topic again (the audit): ev, received under key,
// replaces the key's current table value cur if it wins under
// inventory.ApplyLocationPolicy / ApplyMerchantPolicy; changed is false
// when it does not. A key that is not the policy's own is an error.
func FoldPolicy(key string, ev, cur *pb.PolicyEvent) (*pb.PolicyEvent, bool, error) {
	want, err := PolicyKey(ev)
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
