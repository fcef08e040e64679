"""The original Homi backend's memory-agent.py, ported to Homi.

The only change from the mem0 version is the import line: `from homi import
Memory` instead of `from mem0 import Memory`. Same configuration dict (an
OpenAI LLM and a Supabase vector store at DATABASE_URL), same loop: search
the user's memories, answer with them, store the exchange.

    pip install ./homi-py openai python-dotenv
    DATABASE_URL=postgresql://... OPENAI_API_KEY=sk-... python examples/memory_agent.py
"""

import os

from dotenv import load_dotenv
from openai import OpenAI

from homi import Memory

load_dotenv()

# Configure the OpenAI client
openai_client = OpenAI()
model = os.getenv("MODEL_CHOICE", "gpt-4o-mini")

# Configure the memory: an OpenAI LLM and Supabase (Postgres + pgvector)
config = {
    "llm": {
        "provider": "openai",
        "config": {
            "model": model,
        },
    },
    "vector_store": {
        "provider": "supabase",
        "config": {
            "connection_string": os.environ["DATABASE_URL"],
            "collection_name": "memories",
        },
    },
}

memory = Memory.from_config(config)


def chat_with_memories(message: str, user_id: str = "default_user") -> str:
    # Retrieve relevant memories
    relevant_memories = memory.search(query=message, user_id=user_id, limit=3)
    memories_str = "\n".join(f"- {entry['memory']}" for entry in relevant_memories["results"])

    # Generate the assistant's response
    system_prompt = f"You are a helpful AI. Answer the question based on query and memories.\nUser Memories:\n{memories_str}"
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": message}]
    response = openai_client.chat.completions.create(model=model, messages=messages)
    assistant_response = response.choices[0].message.content

    # Create new memories from the conversation
    messages.append({"role": "assistant", "content": assistant_response})
    memory.add(messages, user_id=user_id)

    return assistant_response


def main():
    print("Chat with AI (type 'exit' to quit)")
    while True:
        try:
            user_input = input("You: ").strip()
        except EOFError:
            break
        if user_input.lower() == "exit":
            print("Goodbye!")
            break
        print(f"AI: {chat_with_memories(user_input)}")


if __name__ == "__main__":
    main()
