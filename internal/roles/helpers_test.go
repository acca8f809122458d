package roles_test

import (
	"hash"

	"github.com/lovoo/goka"

	"github.com/skuflow/skuflow/internal/kafkacfg"
)

type kafkaOpts = kafkacfg.Options

// fnvHasher is goka's key hasher, so raw producers place keys like goka does.
func fnvHasher() hash.Hash32 { return goka.DefaultHasher()() }
