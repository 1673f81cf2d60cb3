--
-- PostgreSQL database dump
--

-- Dumped from database version 16.3 (Debian 16.3-1.pgdg120+1)
-- Dumped by pg_dump version 16.3 (Debian 16.3-1.pgdg120+1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: lists; Type: TABLE DATA; Schema: public; Owner: listmonk
--

COPY public.lists (id, uuid, name, type, optin, status, tags, description, created_at, updated_at) FROM stdin;
1	0e3c0f7a-0000-4000-8000-000000000001	Weekly	public	double	active	{}		2024-01-01 09:00:00+00	2024-01-01 09:00:00+00
2	0e3c0f7a-0000-4000-8000-000000000002	Members	private	single	active	{}	For members	2024-01-01 09:00:00+00	2024-01-01 09:00:00+00
\.


--
-- Data for Name: subscribers; Type: TABLE DATA; Schema: public; Owner: listmonk
--

COPY public.subscribers (id, uuid, email, name, attribs, status, created_at, updated_at) FROM stdin;
1	5a1f0e2c-0000-4000-8000-000000000001	wes@example.org	Wes	{"city": "Oslo"}	enabled	2021-04-01 10:00:00.123+00	2021-04-01 10:00:00+00
2	5a1f0e2c-0000-4000-8000-000000000002	xia@example.org	Xia O'Neill	{}	blocklisted	2021-05-01 10:00:00+00	2021-05-01 10:00:00+00
3	5a1f0e2c-0000-4000-8000-000000000003	lia@example.org	Lia	{}	enabled	2022-02-01 10:00:00+00	2022-02-01 10:00:00+00
4	5a1f0e2c-0000-4000-8000-000000000004	max@example.org	Max	{}	enabled	2022-03-01 10:00:00+00	2022-03-01 10:00:00+00
\.


--
-- Data for Name: subscriber_lists; Type: TABLE DATA; Schema: public; Owner: listmonk
--

COPY public.subscriber_lists (subscriber_id, list_id, meta, status, created_at, updated_at) FROM stdin;
1	1	{}	confirmed	2021-04-01 10:00:00+00	2021-04-01 10:00:00+00
2	1	{}	confirmed	2021-05-01 10:00:00+00	2021-05-01 10:00:00+00
3	1	{}	confirmed	2022-02-01 10:00:00+00	2022-02-01 10:00:00+00
3	2	{}	confirmed	2022-02-01 10:00:00+00	2022-02-01 10:00:00+00
4	1	{}	unsubscribed	2022-03-01 10:00:00+00	2023-01-01 10:00:00+00
\.


--
-- Data for Name: campaigns; Type: TABLE DATA; Schema: public; Owner: listmonk
--

COPY public.campaigns (id, uuid, name, subject, from_email, body, body_source, altbody, content_type, send_at, headers, attribs, status, tags, type, messenger, template_id, to_send, sent, max_subscriber_id, last_subscriber_id, archive, archive_slug, archive_template_id, archive_meta, started_at, created_at, updated_at) FROM stdin;
1	6c1b0d9e-0000-4000-8000-000000000001	welcome-2024	Welcome to Harbor Notes	Dana Reyes <dana@notes.example.org>	<h3>Hi {{ .Subscriber.FirstName }}!</h3>\n<p>Every week I write about the harbor: its <a href="{{ TrackLink "https://example.org/tides" }}">tide tables</a>, its boats and its <a href="https://example.org/charts@TrackLink">old charts</a>.</p>\n<p><img src="http://192.168.1.20/uploads/harbor.jpg" alt="The harbor at dawn"></p>\n<p>You are reading from {{ .Subscriber.Attribs.city }}.</p>\n{{ Safe "<!-- kept for the archive -->" }}\n<p style="font-size: 12px"><a href="{{ UnsubscribeURL }}">Unsubscribe</a> &middot; <a href="{{ MessageURL }}">View in browser</a></p>\n{{ TrackView }}	\N	\N	richtext	2024-03-05 09:00:00.000000+00	[]	{}	finished	{intro,harbor}	regular	email	1	120	120	200	200	t	welcome-to-harbor-notes	1	{}	2024-03-05 09:00:00.500000+00	2024-03-01 08:00:00.123456+00	2024-03-02 08:00:00.000000+00
2	6c1b0d9e-0000-4000-8000-000000000002	spring-tides	Spring tides, and why they are not about spring	Dana Reyes <dana@notes.example.org>	Hello {{ .Subscriber.Name }},\n\n## The moon and the sun\n\nA spring tide comes when the sun and the moon line up (it's the moon's pull, doubled):\n\n\tlow  0.2 m\n\thigh 4.1 m\n\nSee [the chart]({{ TrackLink "https://example.org/chart" }}).\n\n{{ if eq .Subscriber.Attribs.city "Portland" }}Portland readers: the lowest water is on Friday.{{ end }}\n\n[Unsubscribe]({{ UnsubscribeURL }})\n	\N	\N	markdown	2024-03-12 09:00:00.000000+00	[]	{}	finished	{tides}	regular	email	1	150	150	200	200	t	spring-tides	1	{}	2024-03-12 09:00:00.000000+00	2024-03-01 08:00:00.123456+00	2024-03-02 08:00:00.000000+00
4	6c1b0d9e-0000-4000-8000-000000000004	draft-fog	Fog season	Dana Reyes <dana@notes.example.org>	<h2>Fog</h2><p>Half written.</p>	\N	\N	html	\N	[]	{}	draft	{}	regular	email	1	0	0	200	0	f	\N	1	{}	\N	2024-04-01 10:00:00.000000+00	2024-03-02 08:00:00.000000+00
\.


--
-- Data for Name: campaign_lists; Type: TABLE DATA; Schema: public; Owner: listmonk
--

COPY public.campaign_lists (id, campaign_id, list_id, list_name) FROM stdin;
1	1	1	Weekly
2	2	1	Weekly
3	2	2	Members
4	4	1	Weekly
\.


--
-- Name: campaigns_id_seq; Type: SEQUENCE SET; Schema: public; Owner: listmonk
--

SELECT pg_catalog.setval('public.campaigns_id_seq', 7, true);


--
-- PostgreSQL database dump complete
--

