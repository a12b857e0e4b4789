module github.com/valetauth/valet/services/issuer

go 1.26
