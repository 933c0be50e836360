"""MQTT: the integration plane (retained state, availability, events, commands) and the
federation of command centres through bridged brokers. Off unless ``[mqtt]`` names a
broker host. See docs/mqtt.md for the topic tree and the QoS choices.
"""
