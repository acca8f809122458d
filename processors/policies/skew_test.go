package policies_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/schema"
)

// A location or merchant policy whose as_of is more than the allowed skew
// ahead of its message's timestamp is dead-lettered with the reason and
// changes nothing: as of 2199 it would win over every real policy for
// good. One within the skew applies.
func TestFarFuturePolicyIsDeadLettered(t *testing.T) {
	const skew = 5 * time.Minute
	h := startSkew(t, skew)
	h.consume("location/WH-1", marshal(t, locationEvent(warehouse("WH-1", at(1)))), at(1))
	h.consume("merchant/acme", marshal(t, merchantEvent(merchant("acme", time.Hour, at(1)))), at(1))
	if d := h.deadLetters(); len(d) != 0 {
		t.Fatalf("setup dead-lettered %v", d)
	}
	wh, acme := h.raw("location/WH-1"), h.raw("merchant/acme")
	drain(h.changelog)

	far := time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)
	for key, value := range map[string]proto.Message{
		"location/WH-1": locationEvent(warehouse("WH-1", far)),
		"merchant/acme": merchantEvent(merchant("acme", time.Minute, at(2).Add(skew+time.Nanosecond))),
	} {
		h.consume(key, marshal(t, value), at(2))
		dead := h.deadLetters()
		if len(dead) != 1 {
			t.Fatalf("%s: dead-lettered %d messages, want 1", key, len(dead))
		}
		if r := dead[0].GetReason(); !strings.Contains(r, "as_of") || !strings.Contains(r, "after the message time") || !strings.Contains(r, skew.String()) {
			t.Errorf("%s: reason %q does not name as_of, the message time and the skew", key, r)
		}
	}
	if !bytes.Equal(h.raw("location/WH-1"), wh) || !bytes.Equal(h.raw("merchant/acme"), acme) {
		t.Fatalf("a far-future policy changed the table: %v %v", h.value("location/WH-1"), h.value("merchant/acme"))
	}
	// Within the skew: applied.
	h.consume("location/WH-1", marshal(t, locationEvent(warehouse("WH-1", at(2).Add(skew)))), at(2))
	if d := h.deadLetters(); len(d) != 0 || bytes.Equal(h.raw("location/WH-1"), wh) {
		t.Fatalf("a policy within the skew: dead letters %v, table unchanged %v", d, bytes.Equal(h.raw("location/WH-1"), wh))
	}
}

// A policy whose message has no timestamp (Kafka's -1, which sarama reads
// as the zero time) is dead-lettered as a bad timestamp, not as a policy
// from the future, and changes nothing.
func TestPolicyWithoutMessageTimeIsBadTimestamp(t *testing.T) {
	h := startSkew(t, 5*time.Minute)
	h.consume("location/WH-1", marshal(t, locationEvent(warehouse("WH-1", at(1)))), time.Time{})
	dead := h.deadLetters()
	if len(dead) != 1 {
		t.Fatalf("dead-lettered %d messages, want 1", len(dead))
	}
	if c := schema.ClassifyReason(dead[0].GetReason()); c != schema.ReasonBadTimestamp || !strings.Contains(dead[0].GetReason(), "absent") {
		t.Errorf("reason %q (class %q), want %s naming the absent timestamp", dead[0].GetReason(), c, schema.ReasonBadTimestamp)
	}
	if v := h.raw("location/WH-1"); v != nil {
		t.Errorf("table holds %x", v)
	}
}
