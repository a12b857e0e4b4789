module github.com/valetauth/valet/pkg/bus

go 1.26
