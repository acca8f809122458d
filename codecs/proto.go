package codecs

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

var marshal = proto.MarshalOptions{Deterministic: true}

// Proto is a goka.Codec for one protobuf message type M (a pointer type such
// as *skuflowv1.Availability).
type Proto[M proto.Message] struct {
	// New returns an empty message to decode into.
	New func() M
}

// Encode implements goka.Codec.
func (c Proto[M]) Encode(value any) ([]byte, error) {
	m, ok := value.(M)
	if !ok {
		var want M
		return nil, fmt.Errorf("codecs: cannot encode %T, want %T", value, want)
	}
	return marshal.Marshal(m)
}

// Decode implements goka.Codec.
func (c Proto[M]) Decode(data []byte) (any, error) {
	m := c.New()
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("codecs: decode %T: %w", m, err)
	}
	return m, nil
}

// MarshalDeterministic encodes m as every skuflow codec does.
func MarshalDeterministic(m proto.Message) ([]byte, error) { return marshal.Marshal(m) }
