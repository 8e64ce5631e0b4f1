"""The audit webhook receiver: kube-apiserver's audit webhook backend posts
``EventList`` JSON here, and each event goes to the K8s audit topic."""
