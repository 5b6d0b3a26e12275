from portal.notifications.models import OutboundMessage


def test_member_creates_account_confirms_and_logs_in(client, member, run_tasks):
    response = client.post(
        "/compte/creer/",
        {"nir": member.nir, "birth_date": "1985-05-12", "iban_last7": member.iban[-7:]},
    )
    assert response.status_code == 302
    response = client.post(
        "/compte/creer/identifiants/",
        {
            "email": "jeanne@example.org",
            "mobile_phone": "06 11 22 33 44",
            "password": "Une-Phrase-Longue-42",
            "password2": "Une-Phrase-Longue-42",
        },
    )
    assert response.status_code == 302, response.content.decode()
    run_tasks()
    message = OutboundMessage.objects.get(template="account_confirmation")
    assert message.status == OutboundMessage.Status.SENT
    assert message.recipient == "jeanne@example.org"
    link = next(word for word in message.body_text.split() if "/compte/confirmer/" in word)
    path = link.removeprefix("https://compte.example.test")
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == "/compte/confirmer/"
    response = client.post("/compte/confirmer/")
    assert response.status_code == 302
    response = client.post(
        "/connexion/", {"nir": member.nir[:13], "password": "Une-Phrase-Longue-42"}
    )
    assert response.status_code == 302
    assert client.get("/mon-espace/").status_code == 200
