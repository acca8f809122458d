package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway/apierr"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// OrderBus is how the reservation API reaches the order saga: publish
// commands, read the saga's table.
type OrderBus interface {
	Place(ctx context.Context, c inventory.PlaceOrder) error
	Cancel(ctx context.Context, orderID string) error
	Extend(ctx context.Context, e inventory.ExtendOrder) error
	Fulfil(ctx context.Context, f inventory.FulfilOrder) error
	Get(orderID string) (inventory.Order, bool, error)
	// Changed returns a channel closed at the order's next update (a
	// fallback poll covers implementations that never close it).
	Changed(orderID string) <-chan struct{}
	Ready() bool
}

// Defaults of the reservation API; an OrdersOptions field left zero takes
// its default.
const (
	DefaultReservationTTL  = 15 * time.Minute
	DefaultDecisionTimeout = 10 * time.Second
	DefaultOrderWait       = 15 * time.Second
	DefaultOrderPoll       = 250 * time.Millisecond
)

// OrdersOptions configure the reservation API. A zero duration means its
// Default...; a negative one is an error.
type OrdersOptions struct {
	Bus OrderBus
	// Base holds the configured channels: an order on any other channel is
	// refused before it is published, as the SKU processors would refuse
	// it. Left zero it is inventory.DefaultBase(); the serving role
	// (internal/app) hands it its own Base.
	Base inventory.Base
	// DefaultTTL is the reservation TTL when a request sets none.
	DefaultTTL time.Duration
	// DecisionTimeout is how long the saga waits for every line's outcome.
	DecisionTimeout time.Duration
	// Wait bounds how long PlaceOrder and CancelOrder wait for the saga
	// (within the caller's own deadline).
	Wait time.Duration
	// Poll is how often the saga's table is read while waiting, should a
	// change notification be missed.
	Poll time.Duration
	// Now is the clock orders are answered at: a reservation whose hold ran
	// out by then is answered expired (default time.Now).
	Now func() time.Time
	// Stock, if set, is read by FulfilOrder to refuse a shipment from a
	// location (and area) where the SKU has no stock record, as the SKU
	// processor would. The serving role (internal/app) hands it its view.
	Stock  views.StockLookup
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o OrdersOptions) Validate() error {
	var errs []error
	if o.Bus == nil {
		errs = append(errs, errors.New("reservations: no order bus"))
	}
	if !zeroBase(o.Base) {
		if err := o.Base.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("reservations: %w", err))
		}
	}
	for name, d := range map[string]time.Duration{"default TTL": o.DefaultTTL, "decision timeout": o.DecisionTimeout, "wait": o.Wait, "poll": o.Poll} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("reservations: %s %s is negative", name, d))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero durations with their defaults.
func (o OrdersOptions) withDefaults() OrdersOptions {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&o.DefaultTTL, DefaultReservationTTL)
	set(&o.DecisionTimeout, DefaultDecisionTimeout)
	set(&o.Wait, DefaultOrderWait)
	set(&o.Poll, DefaultOrderPoll)
	if zeroBase(o.Base) {
		o.Base = inventory.DefaultBase()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func zeroBase(b inventory.Base) bool { return len(b.Channels) == 0 && b.DefaultStaleAfter == 0 }

type ordersServer struct {
	pb.UnimplementedReservationServiceServer
	o OrdersOptions
	// restIC is the API key interceptor REST calls run through (restauth.go;
	// nil: none).
	restIC grpc.UnaryServerInterceptor
}

// NewOrders returns the ReservationService over bus as a gateway Service.
func NewOrders(o OrdersOptions) (Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	return &ordersServer{o: o}, nil
}

func (s *ordersServer) RegisterGRPC(g *grpc.Server) { pb.RegisterReservationServiceServer(g, s) }

func (s *ordersServer) RegisterHTTP(_ *http.ServeMux, gw *runtime.ServeMux) error {
	return pb.RegisterReservationServiceHandlerServer(context.Background(), gw, restReservations{srv: s, ic: s.restIC})
}

func (s *ordersServer) Ready() bool { return s.o.Bus.Ready() }

func (s *ordersServer) PlaceOrder(ctx context.Context, req *pb.PlaceOrderRequest) (*pb.Order, error) {
	ttl := s.o.DefaultTTL
	if d := req.GetReservationTtl(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, apierr.Invalid(fmt.Errorf("reservation_ttl: %w", err))
		}
		ttl = d.AsDuration()
	}
	if r := req.GetShipToRegion(); r != "" {
		if err := inventory.ValidateRegion("ship_to_region", r); err != nil {
			return nil, apierr.Invalid(err)
		}
	}
	cmd := inventory.PlaceOrder{OrderID: req.GetOrderId(), Channel: req.GetChannel(), ReservationTTL: ttl, DecisionTimeout: s.o.DecisionTimeout,
		ShipTo: req.GetShipToRegion()}
	for _, l := range req.GetLines() {
		cmd.Lines = append(cmd.Lines, inventory.OrderLine{SKU: l.GetSku(), Quantity: l.GetQuantity()})
	}
	if err := cmd.Validate(); err != nil {
		return nil, err // wraps inventory.ErrInvalidEvent: InvalidArgument
	}
	if err := s.refused(cmd); err != nil {
		return nil, err
	}
	// The saga keeps the first order placed under an id and refuses any
	// other; a caller gets the recorded order only if it is the caller's
	// own, however the calls raced: checked before publishing and on every
	// order read while waiting.
	placed := func(o inventory.Order) (bool, error) {
		if !o.Placed() {
			// Cancelled before it was placed: the saga answers this place
			// cancelled once it arrives.
			return false, nil
		}
		if !o.SameOrder(cmd) {
			return false, orderConflict(cmd.OrderID)
		}
		return o.Final(), nil
	}
	if o, found, err := s.o.Bus.Get(cmd.OrderID); err != nil {
		return nil, lookupError(err)
	} else if found {
		if done, err := placed(o); err != nil {
			return nil, err
		} else if done {
			return s.answer(o), nil
		}
	}
	if err := s.o.Bus.Place(ctx, cmd); err != nil {
		return nil, publishError(ctx, err)
	}
	return s.waitFor(ctx, cmd.OrderID, placed, stillDeciding)
}

// orderConflict answers an order id reused for a different order.
func orderConflict(id string) error {
	return apierr.Publicf(inventory.ErrOrderConflict, "order id %q was already used for a different order", id)
}

// refused reports what the pipeline would refuse for the whole order, so
// that it is answered now rather than after the decision timeout: it runs
// the order through the pipeline's own functions, the saga's ApplyOrder and
// then inventory.Demand for every request the saga would send, each on an
// empty SKU state under the configured channels, for the order's ship-to
// region as the SKU processors will decide it (the saga puts the region in
// every request). Their decisions are discarded; only their errors count
// (e.g. inventory.ErrUnknownChannel).
func (s *ordersServer) refused(cmd inventory.PlaceOrder) error {
	at := s.o.Now()
	_, eff, _, err := inventory.ApplyOrder(inventory.Order{}, false, cmd, at)
	if err != nil {
		return err // wraps inventory.ErrInvalidEvent: InvalidArgument
	}
	pol := s.o.Base.Policies()
	pol.ShipTo = cmd.ShipTo
	var errs []error
	seen := map[string]bool{}
	for _, r := range eff.Requests {
		_, _, _, err := inventory.Demand(inventory.State{SKU: r.SKU}, r, pol, at)
		switch {
		case err == nil:
		case errors.Is(err, inventory.ErrUnknownChannel):
			return apierr.Publicf(err, "channel %q is not configured; the configured channels are %s",
				cmd.Channel, strings.Join(pol.Channels, ", "))
		case !seen[err.Error()]:
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *ordersServer) GetOrder(_ context.Context, req *pb.GetOrderRequest) (*pb.Order, error) {
	if err := inventory.ValidateRef("order_id", req.GetOrderId()); err != nil {
		return nil, apierr.Invalid(err)
	}
	o, found, err := s.o.Bus.Get(req.GetOrderId())
	if err != nil {
		return nil, lookupError(err)
	}
	if !found {
		return nil, apierr.Publicf(apierr.ErrNotFound, "order %q is not known", req.GetOrderId())
	}
	return s.answer(o), nil
}

// answer is the order as it stands now: a reservation whose hold ran out
// is shown expired even before the saga's tick records it.
func (s *ordersServer) answer(o inventory.Order) *pb.Order {
	return codecs.OrderToProto(inventory.OrderAt(o, s.o.Now()))
}

// ended reports whether the order holds nothing and never will again.
func ended(o inventory.Order) bool {
	switch o.Status {
	case inventory.OrderCancelled, inventory.OrderRejected, inventory.OrderExpired, inventory.OrderFulfilled:
		return true
	}
	return false
}

func (s *ordersServer) CancelOrder(ctx context.Context, req *pb.CancelOrderRequest) (*pb.Order, error) {
	id := req.GetOrderId()
	if err := inventory.ValidateRef("order_id", id); err != nil {
		return nil, apierr.Invalid(err)
	}
	// An order not known yet is cancelled all the same: its place may still
	// be on its way, and the saga remembers the cancel and answers the place
	// cancelled.
	o, found, err := s.o.Bus.Get(id)
	if err != nil {
		return nil, lookupError(err)
	}
	if found && ended(inventory.OrderAt(o, s.o.Now())) {
		return s.answer(o), nil
	}
	if err := s.o.Bus.Cancel(ctx, id); err != nil {
		return nil, publishError(ctx, err)
	}
	return s.waitFor(ctx, id, func(o inventory.Order) (bool, error) { return ended(o), nil }, stillDeciding)
}

func (s *ordersServer) ExtendOrder(ctx context.Context, req *pb.ExtendOrderRequest) (*pb.Order, error) {
	id := req.GetOrderId()
	if err := inventory.ValidateRef("order_id", id); err != nil {
		return nil, apierr.Invalid(err)
	}
	d := req.GetReservationTtl()
	if d == nil {
		return nil, apierr.Invalid(errors.New("reservation_ttl is missing"))
	}
	if err := d.CheckValid(); err != nil {
		return nil, apierr.Invalid(fmt.Errorf("reservation_ttl: %w", err))
	}
	if ttl := d.AsDuration(); ttl <= 0 || ttl > inventory.MaxReservationTTL {
		return nil, apierr.Invalid(fmt.Errorf("reservation_ttl %s is outside (0, %s]", ttl, inventory.MaxReservationTTL))
	}
	o, found, err := s.o.Bus.Get(id)
	if err != nil {
		return nil, lookupError(err)
	}
	if !found {
		return nil, apierr.Publicf(apierr.ErrNotFound, "order %q is not known", id)
	}
	now := s.o.Now().UTC()
	if err := extendable(inventory.OrderAt(o, now)); err != nil {
		return nil, err
	}
	cmd := inventory.ExtendOrder{OrderID: id, ExpiresAt: now.Add(d.AsDuration())}
	if extendedTo(o, cmd.ExpiresAt) {
		return s.answer(o), nil
	}
	if err := s.o.Bus.Extend(ctx, cmd); err != nil {
		return nil, publishError(ctx, err)
	}
	// The saga records the extension as pending and moves a line's
	// expires_at only once its SKU accepted it; a SKU whose hold ran out
	// first refuses, and the saga ends the order EXPIRED. So the answer
	// waits for every SKU's decision: the confirmed expiries, or
	// FailedPrecondition.
	return s.waitFor(ctx, id, func(o inventory.Order) (bool, error) {
		if o.Status != inventory.OrderReserved && o.Status != inventory.OrderPartiallyFulfilled {
			return false, extendable(o)
		}
		return extendedTo(o, cmd.ExpiresAt), nil
	}, func(id string) string {
		return fmt.Sprintf("the extension of order %q is not confirmed yet; retry ExtendOrder or GetOrder it later (extend_to shows a pending extension)", id)
	})
}

// extendable refuses to extend an order that holds nothing.
func extendable(o inventory.Order) error {
	switch o.Status {
	case inventory.OrderReserved, inventory.OrderPartiallyFulfilled:
		return nil
	case inventory.OrderPending:
		return apierr.Publicf(apierr.ErrFailedPrecondition, "order %q is still being decided; extend it once it is reserved", o.ID)
	}
	return apierr.Publicf(apierr.ErrFailedPrecondition, "order %q is %s and holds nothing to extend: %s", o.ID,
		strings.TrimPrefix(pb.OrderStatus(o.Status).String(), "ORDER_STATUS_"), o.Reason)
}

// extendedTo reports whether every held line of o is held until at least t
// by an expiry its SKU confirmed, with no extension still pending (nothing
// the SKU may yet refuse).
func extendedTo(o inventory.Order, t time.Time) bool {
	for _, l := range o.Lines {
		if l.Held() && (l.ExpiresAt.Before(t) || l.ExtensionPending()) {
			return false
		}
	}
	return true
}

func (s *ordersServer) FulfilOrder(ctx context.Context, req *pb.FulfilOrderRequest) (*pb.Order, error) {
	cmd := inventory.FulfilOrder{OrderID: req.GetOrderId(), FulfilmentID: req.GetFulfilmentId(), Lines: codecs.FulfilmentLinesFromProto(req.GetLines())}
	if err := cmd.Validate(); err != nil {
		return nil, err // wraps inventory.ErrInvalidEvent: InvalidArgument
	}
	o, found, err := s.o.Bus.Get(cmd.OrderID)
	if err != nil {
		return nil, lookupError(err)
	}
	if !found || !o.Placed() {
		return nil, apierr.Publicf(apierr.ErrNotFound, "order %q is not known", cmd.OrderID)
	}
	// The saga decides a fulfilment once and keeps the decision under its
	// id; the answer is that decision, for the caller whose lines it is,
	// however calls with the id raced.
	decided := func(o inventory.Order) (bool, error) {
		f, ok := o.FulfilmentByID(cmd.FulfilmentID)
		switch {
		case !ok:
			return false, nil
		case !f.SameFulfilment(cmd):
			return false, apierr.Publicf(inventory.ErrFulfilmentConflict, "fulfilment id %q of order %q was already used for other lines", cmd.FulfilmentID, cmd.OrderID)
		case f.Refused != "":
			return false, apierr.Publicf(apierr.ErrFailedPrecondition, "fulfilment %q of order %q was refused: %s", cmd.FulfilmentID, cmd.OrderID, f.Refused)
		}
		return true, nil
	}
	if done, err := decided(o); err != nil {
		return nil, err
	} else if done {
		return s.answer(o), nil
	}
	if err := s.shipsFromStock(cmd); err != nil {
		return nil, err
	}
	// What the saga would decide on the order as the gateway sees it: a
	// refusal (or a rule's error, such as the fulfilment limit) is answered
	// now, without publishing.
	if next, _, _, err := inventory.ApplyOrder(o, true, cmd, s.o.Now()); err != nil {
		return nil, err
	} else if f, _ := next.FulfilmentByID(cmd.FulfilmentID); f.Refused != "" {
		return nil, apierr.Publicf(apierr.ErrFailedPrecondition, "order %q cannot ship that: %s", cmd.OrderID, f.Refused)
	}
	if err := s.o.Bus.Fulfil(ctx, cmd); err != nil {
		return nil, publishError(ctx, err)
	}
	return s.waitFor(ctx, cmd.OrderID, decided, func(id string) string {
		return fmt.Sprintf("fulfilment %q of order %q is not decided yet; retry FulfilOrder with the same id or GetOrder it later", cmd.FulfilmentID, id)
	})
}

// shipsFromStock refuses a fulfilment line from a location (and area) the
// SKU has no stock record at: the SKU processor would refuse it after the
// saga recorded it as shipped.
func (s *ordersServer) shipsFromStock(cmd inventory.FulfilOrder) error {
	if s.o.Stock == nil {
		return nil
	}
	for i, l := range cmd.Lines {
		st, found, err := s.o.Stock.Get(l.SKU)
		if err != nil {
			return &apierr.LookupError{Views: "stock", Lookup: "stock", Err: fmt.Errorf("sku %q: %w", l.SKU, err)}
		}
		if found && slices.ContainsFunc(st.Locations, func(loc inventory.Location) bool { return loc.ID == l.Location && loc.Area == l.Area }) {
			continue
		}
		where := fmt.Sprintf("location %q", l.Location)
		if l.Area != "" {
			where += fmt.Sprintf(" area %q", l.Area)
		}
		return apierr.Publicf(apierr.ErrFailedPrecondition, "line %d: sku %q has no stock record at %s to ship from", i+1, l.SKU, where)
	}
	return nil
}

// stillDeciding is the answer when PlaceOrder or CancelOrder waited in vain.
func stillDeciding(id string) string {
	return fmt.Sprintf("order %q is still being decided; retry PlaceOrder with the same id or GetOrder it later", id)
}

// waitFor polls the saga's table until check says the order is done, check
// fails (its error is the answer), the wait bound passes or the caller
// gives up (then the answer is DeadlineExceeded with timedOut's message).
func (s *ordersServer) waitFor(ctx context.Context, id string, check func(inventory.Order) (bool, error), timedOut func(id string) string) (*pb.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Wait)
	defer cancel()
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		changed := s.o.Bus.Changed(id)
		o, found, err := s.o.Bus.Get(id)
		if err != nil && !errors.Is(err, views.ErrNotReady) {
			return nil, lookupError(err)
		}
		if found {
			if done, err := check(o); err != nil {
				return nil, err
			} else if done {
				return s.answer(o), nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, apierr.Public(context.Canceled, "request cancelled while waiting for the order")
			}
			return nil, apierr.Public(context.DeadlineExceeded, timedOut(id))
		case <-changed:
		case <-t.C:
		}
	}
}

// lookupError is a failed read of the orders view.
func lookupError(err error) error {
	return &apierr.LookupError{Views: "order", Lookup: "order", Err: err}
}

// publishError is a failed publish of an order command: past the caller's
// deadline DeadlineExceeded, otherwise Unavailable; either way the caller
// may retry with the same order id.
func publishError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &apierr.Error{Kind: context.DeadlineExceeded, Msg: "could not publish the order before the deadline", Cause: err}
	}
	return apierr.Unavailable("could not publish the order; retry with the same id", fmt.Errorf("publishing an order command: %w", err))
}
