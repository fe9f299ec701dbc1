module seam.samples/chain

go 1.19
