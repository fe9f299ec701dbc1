module seam.samples/cgolong

go 1.19
