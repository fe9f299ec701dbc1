module seam.samples/gomain

go 1.19
