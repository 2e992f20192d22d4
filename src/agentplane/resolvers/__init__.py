"""The application layer: transport-neutral functions, one module per domain; every permission
check and tenant filter lives here. Imports models/, core/ and its siblings; never a transport."""
