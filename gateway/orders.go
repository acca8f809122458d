package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// DefaultTTL is the reservation TTL when a request sets none.
	DefaultTTL time.Duration
	// DecisionTimeout is how long the saga waits for every line's outcome.
	DecisionTimeout time.Duration
	// Wait bounds how long PlaceOrder and CancelOrder wait for the saga
	// (within the caller's own deadline).
	Wait time.Duration
	// Poll is how often the saga's table is read while waiting, should a
	// change notification be missed.
	Poll   time.Duration
	Logger *slog.Logger
}

// Validate reports every problem with the options.
func (o OrdersOptions) Validate() error {
	var errs []error
	if o.Bus == nil {
		errs = append(errs, errors.New("reservations: no order bus"))
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

type ordersServer struct {
	pb.UnimplementedReservationServiceServer
	o OrdersOptions
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
	return pb.RegisterReservationServiceHandlerServer(context.Background(), gw, s)
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
	cmd := inventory.PlaceOrder{OrderID: req.GetOrderId(), Channel: req.GetChannel(), ReservationTTL: ttl, DecisionTimeout: s.o.DecisionTimeout}
	for _, l := range req.GetLines() {
		cmd.Lines = append(cmd.Lines, inventory.OrderLine{SKU: l.GetSku(), Quantity: l.GetQuantity()})
	}
	if err := cmd.Validate(); err != nil {
		return nil, err // wraps inventory.ErrInvalidEvent: InvalidArgument
	}
	if o, found, err := s.o.Bus.Get(cmd.OrderID); err != nil {
		return nil, lookupError(err)
	} else if found {
		if !o.SameOrder(cmd) {
			return nil, apierr.Publicf(inventory.ErrOrderConflict, "order id %q was already used for a different order", cmd.OrderID)
		}
		if o.Final() {
			return codecs.OrderToProto(o), nil
		}
	}
	if err := s.o.Bus.Place(ctx, cmd); err != nil {
		return nil, publishError(ctx, err)
	}
	return s.waitFor(ctx, cmd.OrderID, func(o inventory.Order) bool { return o.Final() })
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
	return codecs.OrderToProto(o), nil
}

func (s *ordersServer) CancelOrder(ctx context.Context, req *pb.CancelOrderRequest) (*pb.Order, error) {
	id := req.GetOrderId()
	if err := inventory.ValidateRef("order_id", id); err != nil {
		return nil, apierr.Invalid(err)
	}
	o, found, err := s.o.Bus.Get(id)
	if err != nil {
		return nil, lookupError(err)
	}
	if !found {
		return nil, apierr.Publicf(apierr.ErrNotFound, "order %q is not known", id)
	}
	if o.Status == inventory.OrderCancelled || o.Status == inventory.OrderRejected {
		return codecs.OrderToProto(o), nil
	}
	if err := s.o.Bus.Cancel(ctx, id); err != nil {
		return nil, publishError(ctx, err)
	}
	return s.waitFor(ctx, id, func(o inventory.Order) bool {
		return o.Status == inventory.OrderCancelled || o.Status == inventory.OrderRejected
	})
}

// waitFor polls the saga's table until done holds, the wait bound passes or
// the caller gives up.
func (s *ordersServer) waitFor(ctx context.Context, id string, done func(inventory.Order) bool) (*pb.Order, error) {
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
		if found && done(o) {
			return codecs.OrderToProto(o), nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, apierr.Public(context.Canceled, "request cancelled while waiting for the order")
			}
			return nil, apierr.Publicf(context.DeadlineExceeded, "order %q is still being decided; retry PlaceOrder with the same id or GetOrder it later", id)
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
