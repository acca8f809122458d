package deadletter

import (
	"errors"
	"strings"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
)

// ReasonClass is the class of a bad-input error (one of
// schema.ReasonClasses): by the sentinel it wraps where there is one, else
// by its text (schema.ClassifyReason).
func ReasonClass(err error) string {
	switch {
	case errors.Is(err, codecs.ErrMalformed):
		return schema.ReasonMalformed
	case errors.Is(err, inventory.ErrUnknownChannel):
		return schema.ReasonUnknownChannel
	case errors.Is(err, inventory.ErrConflictingDuplicate):
		return schema.ReasonConflictingDup
	case errors.Is(err, inventory.ErrFutureTime):
		return schema.ReasonFutureTime
	case errors.Is(err, inventory.ErrBadMessageTime):
		return schema.ReasonBadTimestamp
	case errors.Is(err, codecs.ErrStateLimit):
		return schema.ReasonStateLimit
	case errors.Is(err, inventory.ErrInvalidEvent):
		return schema.ReasonInvalidEvent
	}
	return schema.ClassifyReason(err.Error())
}

// The outcomes of handling an input message (the outcome label).
const (
	OutcomeOK           = "ok"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeFailed       = "failed"
)

// The package's metrics. They are created here but registered nowhere:
// linking the package registers nothing; the composition root registers
// Collectors() on the registerer it serves (internal/app). Counting is
// process-wide, as the groups' callbacks are.
var (
	deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skuflow_dead_letters_total",
		Help: "Input messages sent to the dead-letter topic, by group, input topic and reason class.",
	}, []string{"group", "topic", "reason"})
	handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skuflow_events_handled_total",
		Help: "Input messages handled, by group, input topic and outcome (ok, dead_lettered, failed).",
	}, []string{"group", "topic", "outcome"})
	reservations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "skuflow_reservation_outcomes_total",
		Help: "Reservation decisions emitted, by result: accepted, backorder, or the reject reason " +
			"(insufficient, not_sellable, cap_exceeded, released, timeout, cancelled, unspecified); " +
			"kind is request or extension. A duplicate request's repeated decision counts again.",
	}, []string{"result", "kind"})
)

// Collectors are the package's metrics, for the root to register.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{deadLetters, handled, reservations}
}

// Register registers Collectors on reg; registering them on a registerer
// that already has them is not an error.
func Register(reg prometheus.Registerer) error {
	for _, c := range Collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) && are.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// counting is the goka.Context a Func sees: it counts the reservation
// decisions the callback emits, so that every group is measured in the
// one wrapper it goes through.
type counting struct{ gokaContext }

// gokaContext names the embedded interface apart from its Context method.
type gokaContext = goka.Context

func (c counting) Emit(topic goka.Stream, key string, value any, opts ...goka.ContextOption) {
	c.gokaContext.Emit(topic, key, value, opts...)
	if topic != schema.Outcomes {
		return
	}
	if o, ok := value.(*pb.ReservationOutcome); ok {
		kind := "request"
		if o.GetExtension() {
			kind = "extension"
		}
		reservations.WithLabelValues(OutcomeResult(o), kind).Inc()
	}
}

// OutcomeResult is the result label of a reservation decision.
func OutcomeResult(o *pb.ReservationOutcome) string {
	switch {
	case o.GetAccepted() && o.GetBackorder():
		return "backorder"
	case o.GetAccepted():
		return "accepted"
	}
	r := o.GetReason()
	name, ok := pb.RejectReason_name[int32(r)]
	if !ok {
		return "unspecified" // a reason newer than this binary: bounded all the same
	}
	return strings.ToLower(strings.TrimPrefix(name, "REJECT_REASON_"))
}
