"""The service layer: one scoring pipeline behind file jobs and the Kafka daemon.

Submodules are imported on use (``streammem.service.daemon`` pulls in kafka-python,
``streammem.service.plot`` matplotlib), so importing the package stays cheap.
"""
