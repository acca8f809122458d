package roles

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/skuflow/skuflow/codecs"
	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/inventory"
	"github.com/skuflow/skuflow/processors/orders"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// OrdersConfig configures the reservation API.
type OrdersConfig struct {
	DefaultTTL      time.Duration
	DecisionTimeout time.Duration
	Wait            time.Duration
}

// DefaultOrdersConfig holds the defaults of the reservation API.
var DefaultOrdersConfig = OrdersConfig{DefaultTTL: 15 * time.Minute, DecisionTimeout: 10 * time.Second, Wait: 15 * time.Second}

// OrdersService is the ServiceFactory of the reservation API
// (ReservationService: PlaceOrder, GetOrder, CancelOrder).
func OrdersService(c OrdersConfig) ServiceFactory {
	return ServiceFactory{Name: "orders", New: func(env ServiceEnv) (Service, error) {
		v, err := views.NewOrders(env.Kafka.Brokers, append(env.Kafka.ViewOptions(),
			goka.WithViewStorageBuilder(storage.DefaultBuilder(filepath.Join(env.DataDir, "views"))))...)
		if err != nil {
			return nil, err
		}
		em, err := goka.NewEmitter(env.Kafka.Brokers, orders.Topic, new(codec.Bytes), env.Kafka.LowLatencyEmitterOptions()...)
		if err != nil {
			return nil, fmt.Errorf("orders emitter: %w", err)
		}
		bus := &orderBus{view: v, em: em}
		svc := gateway.NewOrders(gateway.OrdersOptions{Bus: bus, DefaultTTL: c.DefaultTTL, DecisionTimeout: c.DecisionTimeout,
			Wait: c.Wait, Logger: env.Logger})
		return &ordersService{Service: svc, bus: bus}, nil
	}}
}

type ordersService struct {
	gateway.Service
	bus *orderBus
}

func (s *ordersService) Run(ctx context.Context) error {
	err := s.bus.view.Run(ctx)
	return errors.Join(err, s.bus.em.Finish())
}

// orderBus publishes saga commands and reads the saga's table.
type orderBus struct {
	view *views.Orders
	em   *goka.Emitter
}

func (b *orderBus) Ready() bool { return b.view.Ready() }

func (b *orderBus) Get(id string) (inventory.Order, bool, error) { return b.view.Get(id) }

func (b *orderBus) Changed(id string) <-chan struct{} { return b.view.Changed(id) }

func (b *orderBus) Place(ctx context.Context, c inventory.PlaceOrder) error {
	return b.send(ctx, c.OrderID, &pb.OrderCommand{Command: &pb.OrderCommand_Place{Place: codecs.PlaceOrderToProto(c)}})
}

func (b *orderBus) Cancel(ctx context.Context, id string) error {
	return b.send(ctx, id, &pb.OrderCommand{Command: &pb.OrderCommand_Cancel{Cancel: &pb.CancelOrderCommand{OrderId: id}}})
}

func (b *orderBus) send(ctx context.Context, key string, m *pb.OrderCommand) error {
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
