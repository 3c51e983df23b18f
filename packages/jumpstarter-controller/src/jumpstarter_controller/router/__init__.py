"""The router: pairs a client's and an exporter's RouterService streams by their token's subject."""
