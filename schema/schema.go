package schema

import (
	"slices"
	"strconv"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/skuflow/skuflow/codecs"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// The processor groups. Each group's table is GroupTable(group).
const (
	// StockGroup folds supply, SKU policies and demand into each SKU's
	// inventory.State and publishes Availability.
	StockGroup goka.Group = "skuflow-stock"
	// PoliciesGroup folds location and merchant policies.
	PoliciesGroup goka.Group = "skuflow-policies"
	// OrdersGroup runs the order saga.
	OrdersGroup goka.Group = "skuflow-orders"
	// RegistryGroup is the merchant registry's one writer: it applies
	// RegistryCommands to the whole registry (RegistryTable, one key) and
	// publishes MerchantRegistry entries and merchant policies from it. The
	// gateways serving the feeds API run it (internal/registry).
	RegistryGroup goka.Group = "skuflow-registry"
)

// The group tables (compacted changelogs "<group>-table").
var (
	// StockTable holds inventory.State per SKU (codec StateCodec).
	StockTable = goka.GroupTable(StockGroup)
	// PoliciesTable holds the winning skuflow.v1.PolicyEvent per
	// LocationKey/MerchantKey (codec PolicyCodec).
	PoliciesTable = goka.GroupTable(PoliciesGroup)
	// OrdersTable holds inventory.Order per order id (codec OrderCodec).
	OrdersTable = goka.GroupTable(OrdersGroup)
	// RegistryTable holds the whole merchant registry, a
	// skuflow.v1.RegistryState, under RegistryKey (codec RegistryStateCodec).
	RegistryTable = goka.GroupTable(RegistryGroup)
)

// RegistryKey is the one key of RegistryCommands and RegistryTable: every
// registry change goes to one partition and one writer, in order.
const RegistryKey = "registry"

// The streams and the other topics.
const (
	// Supply carries skuflow.v1.SupplyEvent keyed by SKU.
	Supply goka.Stream = "supply"
	// SkuPolicies carries skuflow.v1.SkuPolicyEvent keyed by SKU.
	SkuPolicies goka.Stream = "sku-policies"
	// StockTicks carries skuflow.v1.StockTick keyed by SKU: the
	// reconciler's requests to expire due reservations and re-publish, and
	// the flood backlog's deferred ticks.
	StockTicks goka.Stream = "stock-ticks"
	// Demand carries skuflow.v1.DemandEvent keyed by SKU: reservation
	// requests, releases and fulfilments.
	Demand goka.Stream = "demand"
	// Outcomes carries skuflow.v1.ReservationOutcome keyed by order id.
	Outcomes goka.Stream = "reservation-outcomes"
	// Availability carries skuflow.v1.Availability keyed by SKU, compacted:
	// the latest answer per SKU, published only on change.
	Availability goka.Stream = "availability"
	// Policies carries skuflow.v1.PolicyEvent keyed by LocationKey or
	// MerchantKey.
	Policies goka.Stream = "policies"
	// Orders carries skuflow.v1.OrderCommand keyed by order id.
	Orders goka.Stream = "orders"
	// DeadLetter carries skuflow.v1.DeadLetter keyed like the input message
	// it holds.
	DeadLetter goka.Stream = "deadletter"
	// DeadLetterRedriven is the compacted topic of the dead letters that
	// `skuflow deadletter redrive` has re-sent: skuflow.v1.DeadLetter (the
	// letter as re-sent) keyed by RedriveKey of the input it holds, so a
	// second redrive of the same letters sends nothing.
	DeadLetterRedriven goka.Table = "deadletter-redriven"
	// MerchantRegistry is the compacted topic of skuflow.v1.RegistryEntry
	// keyed by merchant id (read as a table by the feeds service).
	MerchantRegistry goka.Table = "merchant-registry"
	// RegistryCommands carries skuflow.v1.RegistryCommand, every one keyed
	// RegistryKey: the changes the registry writer (RegistryGroup) applies.
	RegistryCommands goka.Stream = "merchant-registry-commands"
)

// The codecs of each topic's values. Processors read their input streams
// as raw bytes (BytesCodec) and decode them in the callback
// (codecs.Decode...), so that a malformed message can be dead-lettered
// with its bytes and the reason; everything else uses these.
var (
	SupplyCodec        goka.Codec = proto[*pb.SupplyEvent]()
	SkuPolicyCodec     goka.Codec = proto[*pb.SkuPolicyEvent]()
	StockTickCodec     goka.Codec = proto[*pb.StockTick]()
	DemandCodec        goka.Codec = proto[*pb.DemandEvent]()
	PolicyEventCodec   goka.Codec = codecs.PolicyTable
	OrderCommandCodec  goka.Codec = proto[*pb.OrderCommand]()
	StateCodec         goka.Codec = codecs.State{}
	OrderCodec         goka.Codec = codecs.Order{}
	PolicyCodec        goka.Codec = codecs.PolicyTable
	AvailabilityCodec  goka.Codec = codecs.Availability
	OutcomeCodec       goka.Codec = codecs.Outcome
	DeadLetterCodec    goka.Codec = codecs.DeadLetter
	RegistryCodec      goka.Codec = proto[*pb.RegistryEntry]()
	RegistryCmdCodec   goka.Codec = proto[*pb.RegistryCommand]()
	RegistryStateCodec goka.Codec = proto[*pb.RegistryState]()
	// BytesCodec is the codec of input streams (decoded by the callback).
	BytesCodec goka.Codec = new(codec.Bytes)
)

// proto is the codec of messages of type *M.
func proto[M interface {
	*T
	protoreflect.ProtoMessage
}, T any]() codecs.Proto[M] {
	return codecs.Proto[M]{New: func() M { return M(new(T)) }}
}

// Topic describes one topic skuflow creates and uses.
type Topic struct {
	Name string
	// Compacted topics keep the latest value per key (tables, change feeds).
	Compacted bool
	// Key says what a message's key is.
	Key string
	// Value is the protobuf message of a value.
	Value string
	// Codec is the goka codec readers of the topic use.
	Codec goka.Codec
}

// Key kinds.
const (
	KeySKU      = "sku"
	KeyOrderID  = "order id"
	KeyPolicy   = "location/<id> or merchant/<id>"
	KeyMerchant = "merchant id"
	KeyInput    = "the input message's key"
	KeyRedrive  = "<group>:<topic>/<partition>/<offset> of a dead-lettered input"
	KeyRegistry = "\"" + RegistryKey + "\" (one key: one writer)"
)

// DeadLetterKey names a dead letter by its partition and offset in the
// DeadLetter topic.
func DeadLetterKey(partition int32, offset int64) string {
	return strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

// RedriveKey is the key of a dead letter's record in DeadLetterRedriven:
// the input message it holds (the group that rejected it, and where the
// group read it), so that a second letter for the same input (a processor
// that crashed after dead-lettering, before committing) or a recreated
// dead-letter topic cannot make a redrive send it twice or skip another.
func RedriveKey(group, topic string, partition int32, offset int64) string {
	return group + ":" + topic + "/" + strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

var topics = []Topic{
	{Name: string(Supply), Key: KeySKU, Value: "skuflow.v1.SupplyEvent", Codec: SupplyCodec},
	{Name: string(SkuPolicies), Key: KeySKU, Value: "skuflow.v1.SkuPolicyEvent", Codec: SkuPolicyCodec},
	{Name: string(StockTicks), Key: KeySKU, Value: "skuflow.v1.StockTick", Codec: StockTickCodec},
	{Name: string(Demand), Key: KeySKU, Value: "skuflow.v1.DemandEvent", Codec: DemandCodec},
	{Name: string(Policies), Key: KeyPolicy, Value: "skuflow.v1.PolicyEvent", Codec: PolicyEventCodec},
	{Name: string(Orders), Key: KeyOrderID, Value: "skuflow.v1.OrderCommand", Codec: OrderCommandCodec},
	{Name: string(Outcomes), Key: KeyOrderID, Value: "skuflow.v1.ReservationOutcome", Codec: OutcomeCodec},
	{Name: string(Availability), Compacted: true, Key: KeySKU, Value: "skuflow.v1.Availability", Codec: AvailabilityCodec},
	{Name: string(DeadLetter), Key: KeyInput, Value: "skuflow.v1.DeadLetter", Codec: DeadLetterCodec},
	{Name: string(DeadLetterRedriven), Compacted: true, Key: KeyRedrive, Value: "skuflow.v1.DeadLetter", Codec: DeadLetterCodec},
	{Name: string(StockTable), Compacted: true, Key: KeySKU, Value: "skuflow.v1.SkuState", Codec: StateCodec},
	{Name: string(PoliciesTable), Compacted: true, Key: KeyPolicy, Value: "skuflow.v1.PolicyEvent", Codec: PolicyCodec},
	{Name: string(OrdersTable), Compacted: true, Key: KeyOrderID, Value: "skuflow.v1.Order", Codec: OrderCodec},
	{Name: string(MerchantRegistry), Compacted: true, Key: KeyMerchant, Value: "skuflow.v1.RegistryEntry", Codec: RegistryCodec},
	{Name: string(RegistryCommands), Key: KeyRegistry, Value: "skuflow.v1.RegistryCommand", Codec: RegistryCmdCodec},
	{Name: string(RegistryTable), Compacted: true, Key: KeyRegistry, Value: "skuflow.v1.RegistryState", Codec: RegistryStateCodec},
}

// Topics lists every topic skuflow needs, tables' changelogs included, so
// that any role (and views before the processors have run once) can create
// them all.
func Topics() []Topic { return slices.Clone(topics) }

// Lookup returns the topic named name.
func Lookup(name string) (Topic, bool) {
	i := slices.IndexFunc(topics, func(t Topic) bool { return t.Name == name })
	if i < 0 {
		return Topic{}, false
	}
	return topics[i], true
}
