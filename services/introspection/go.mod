module github.com/valetauth/valet/services/introspection

go 1.26
