package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skuflow/skuflow/gateway"
	"github.com/skuflow/skuflow/inventory"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
	"github.com/skuflow/skuflow/views"
)

// syncBuffer is a log sink the gateway's goroutines may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failingBus reads fail with err; nothing is ever placed.
type failingBus struct{ err error }

func (b failingBus) Place(context.Context, inventory.PlaceOrder) error   { return b.err }
func (b failingBus) Cancel(context.Context, string) error                { return b.err }
func (b failingBus) Extend(context.Context, inventory.ExtendOrder) error { return b.err }
func (b failingBus) Fulfil(context.Context, inventory.FulfilOrder) error { return b.err }
func (b failingBus) Get(string) (inventory.Order, bool, error) {
	return inventory.Order{}, false, b.err
}
func (b failingBus) Changed(string) <-chan struct{} { return make(chan struct{}) }
func (b failingBus) Ready() bool                    { return true }

// A service's handler returns plain errors; gateway.New maps them for gRPC
// and REST alike, in one place, and logs a fault once per request with its
// cause, which the caller never reads.
func TestServicesErrorsAreMappedOnce(t *testing.T) {
	const cause = "leveldb: closed"
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		msg    string
		http   int
		logged bool
	}{
		{"view failure", errors.New(cause), codes.Unavailable, "order lookup failed", http.StatusServiceUnavailable, true},
		{"view recovering", fmt.Errorf("orders: %w", views.ErrNotReady), codes.Unavailable, "order views are still recovering; retry shortly", http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			orders, err := gateway.NewOrders(gateway.OrdersOptions{Bus: failingBus{err: tc.err}})
			if err != nil {
				t.Fatal(err)
			}
			opts := options(views.NewMemory(), views.NewMemory())
			opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
			opts.Services = []gateway.Service{orders}
			e := &env{}
			e.serve(t, opts)

			_, err = pb.NewReservationServiceClient(e.conn).GetOrder(ctx(t), &pb.GetOrderRequest{OrderId: "o-1"})
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("gRPC: %s %q, want %s %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			r := e.get(t, orderPath("o-1"))
			if b := errorBody(t, r); r.status != tc.http || b.Code != tc.code || b.Message != tc.msg {
				t.Errorf("REST: %d %s %q, want %d %s %q", r.status, b.Code, b.Message, tc.http, tc.code, tc.msg)
			}

			faults := strings.Count(logs.String(), `msg="request failed"`)
			switch {
			case tc.logged && (faults != 2 || strings.Count(logs.String(), cause) != 2):
				t.Errorf("%d fault lines for 2 requests, want one each with the cause:\n%s", faults, logs)
			case !tc.logged && faults != 0:
				t.Errorf("a recovering view was logged as a fault:\n%s", logs)
			}
		})
	}
}
