package main

import (
	"github.com/spf13/cobra"

	"github.com/skuflow/skuflow/internal/app"
)

// standbyFlags say how a processor instance prepares for partitions it
// may take over (app.Standby).
type standbyFlags struct {
	hot, recoverAhead bool
}

func (f *standbyFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.hot, "hot-standby", false,
		"keep standby copies of the tables of partitions this instance does not own, so it takes them over without a full recovery "+
			"(costs the disk of every table partition and reads every changelog; implies --recover-ahead)")
	cmd.Flags().BoolVar(&f.recoverAhead, "recover-ahead", false,
		"recover the tables of every partition before joining the groups, so a new instance does not pause the partitions it is given")
}

func (f standbyFlags) standby() app.Standby {
	return app.Standby{Hot: f.hot, RecoverAhead: f.recoverAhead}
}
