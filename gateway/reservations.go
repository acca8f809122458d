package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/internal/kafkacfg"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/schema"
	"github.com/skuflow/skuflow/views"
)

// Reservations is the reservation API (ReservationService: PlaceOrder,
// GetOrder, CancelOrder, ExtendOrder, FulfilOrder) wired to the order saga on the cluster: a view of
// the orders table and an emitter of order commands. Serve it with the
// gateway (it is a Service) and run its Run beside it.
type Reservations struct {
	Service
	bus *kafkaOrderBus
}

// NewReservations connects the reservation API to the cluster k, keeping its
// view under dataDir. o.Bus must be nil: the bus is the cluster's.
func NewReservations(k kafkacfg.Options, dataDir string, o OrdersOptions) (*Reservations, error) {
	if o.Bus != nil {
		return nil, errors.New("reservations: the bus is the cluster's; leave OrdersOptions.Bus nil")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v, err := views.NewOrders(k.Brokers, append(k.ViewOptions(),
		goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(dataDir, "views"))),
		goka.WithViewLogger(kafkacfg.GokaLogger(log)))...)
	if err != nil {
		return nil, err
	}
	em, err := goka.NewEmitter(k.Brokers, schema.Orders, schema.BytesCodec, k.LowLatencyEmitterOptions()...)
	if err != nil {
		return nil, fmt.Errorf("orders emitter: %w", err)
	}
	bus := &kafkaOrderBus{view: v, em: em}
	o.Bus = bus
	svc, err := NewOrders(o)
	if err != nil {
		return nil, errors.Join(err, em.Finish())
	}
	return &Reservations{Service: svc, bus: bus}, nil
}

// Run keeps the orders view current until ctx ends, then flushes the
// emitter.
func (r *Reservations) Run(ctx context.Context) error {
	err := r.bus.view.Run(ctx)
	return errors.Join(err, r.bus.em.Finish())
}

// kafkaOrderBus publishes saga commands and reads the saga's table.
type kafkaOrderBus struct {
	view *views.Orders
	em   *goka.Emitter
}

func (b *kafkaOrderBus) Ready() bool { return b.view.Ready() }

func (b *kafkaOrderBus) Get(id string) (inventory.Order, bool, error) { return b.view.Get(id) }

func (b *kafkaOrderBus) Changed(id string) <-chan struct{} { return b.view.Changed(id) }

func (b *kafkaOrderBus) Place(ctx context.Context, c inventory.PlaceOrder) error {
	return b.send(ctx, c.OrderID, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(c)}})
}

func (b *kafkaOrderBus) Cancel(ctx context.Context, id string) error {
	return b.send(ctx, id, &pb.OrderCommand{Command: &pb.OrderCommand_Cancel{Cancel: &pb.CancelOrderCommand{OrderId: id}}})
}

func (b *kafkaOrderBus) Extend(ctx context.Context, e inventory.ExtendOrder) error {
	return b.send(ctx, e.OrderID, &pb.OrderCommand{Command: &pb.OrderCommand_Extend{Extend: codecs.ExtendOrderToProto(e)}})
}

func (b *kafkaOrderBus) Fulfil(ctx context.Context, f inventory.FulfilOrder) error {
	return b.send(ctx, f.OrderID, &pb.OrderCommand{Command: &pb.OrderCommand_Fulfil{Fulfil: codecs.FulfilOrderToProto(f)}})
}

func (b *kafkaOrderBus) send(ctx context.Context, key string, m *pb.OrderCommand) error {
	v, err := codecs.MarshalDeterministic(m)
	if err != nil {
		return err
	}
	p, err := b.em.Emit(key, v)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	p.Then(func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
